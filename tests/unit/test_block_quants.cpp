// The llama.cpp block types beyond Q8_0/Q4_0 (Q4_1, Q5_0, Q5_1, IQ4_NL, Q2_K..Q6_K): layouts
// against hand-decoded blocks, quantizer round trips, and the fast dot products against their
// scalar twins and against dequantize-then-f32-dot. End-to-end agreement with llama.cpp's own
// files is tests/golden/test_logits.cpp.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <cstring>
#include <random>
#include <string>
#include <vector>

#include "tensor/block_quants.h"
#include "tensor/convert.h"
#include "tensor/kernels.h"
#include "tensor/kquant_kernels.h"

namespace flashmem {
namespace {

constexpr double kUnitRoundoff = 0x1p-24;

const DType kBlockTypes[] = {DType::Q4_1, DType::Q5_0, DType::Q5_1, DType::IQ4_NL, DType::Q2_K,
                             DType::Q3_K, DType::Q4_K, DType::Q5_K, DType::Q6_K};

// Uniform in [-1, 1) plus a per-row offset in [-0.5, 0.5) (so mins and signed extremes vary).
std::vector<float> random_floats(int64_t n, uint32_t seed) {
  std::mt19937 rng(seed);
  std::vector<float> v(static_cast<size_t>(n));  // [n]
  for (float& f : v) f = static_cast<float>(rng() >> 8) * 0x1p-23f - 1.0f;
  const float offset = static_cast<float>(rng() >> 8) * 0x1p-24f - 0.5f;
  for (float& f : v) f += offset;
  return v;
}

// Random bytes: every bit pattern of codes and scales, not only what the quantizer produces.
// The fp16 scales are replaced by small finite values so products stay finite.
std::vector<uint8_t> random_blocks(DType type, int64_t rows, int64_t cols, uint32_t seed) {
  std::mt19937 rng(seed);
  std::vector<uint8_t> w(row_bytes(type, cols) * static_cast<size_t>(rows));  // [rows, row_bytes]
  for (uint8_t& b : w) b = static_cast<uint8_t>(rng());
  const DTypeInfo& info = dtype_info(type);
  const int64_t n_blocks = rows * cols / info.block_elems;
  const auto scale = [&] { return f32_to_fp16(static_cast<float>(rng() % 2001) * 1e-5f - 0.01f); };
  for (int64_t b = 0; b < n_blocks; ++b) {
    uint8_t* blk = w.data() + b * info.block_bytes;
    const auto put = [&](size_t offset) {
      const uint16_t h = scale();
      std::memcpy(blk + offset, &h, 2);
    };
    switch (type) {
      case DType::Q4_1: case DType::Q5_1: put(0); put(2); break;
      case DType::Q5_0: case DType::IQ4_NL: put(0); break;
      case DType::Q2_K: put(offsetof(BlockQ2_K, d)); put(offsetof(BlockQ2_K, dmin)); break;
      case DType::Q3_K: put(offsetof(BlockQ3_K, d)); break;
      case DType::Q4_K: case DType::Q5_K: put(0); put(2); break;
      case DType::Q6_K: put(offsetof(BlockQ6_K, d)); break;
      default: break;
    }
  }
  return w;
}

// The activation x rounded the way the type's dot product sees it.
std::vector<float> rounded_activation(DType type, const float* x, int64_t cols) {
  detail::QuantizedActivation a;
  detail::quantize_activation(type, x, cols, &a);
  std::vector<float> out(static_cast<size_t>(cols));  // [cols]
  for (int64_t i = 0; i < cols; ++i) {
    out[i] = detail::activation_format(type) == detail::ActivationFormat::kQ8_K
                 ? a.q8k.d[i / kQKBlock] * a.q8k.qs[i]
                 : a.q8.d[i / kQ8Block] * a.q8.qs[i];
  }
  return out;
}

TEST(BlockQuants, TypeTableMatchesGgml) {
  struct Want {
    uint32_t id;
    const char* name;
    int64_t elems, bytes;
  };
  // ggml's type ids, names and block sizes (bytes per block of `elems` weights).
  const Want want[] = {{3, "q4_1", 32, 20},   {6, "q5_0", 32, 22},   {7, "q5_1", 32, 24},
                       {10, "q2_K", 256, 84}, {11, "q3_K", 256, 110}, {12, "q4_K", 256, 144},
                       {13, "q5_K", 256, 176}, {14, "q6_K", 256, 210}, {20, "iq4_nl", 32, 18}};
  for (const Want& w : want) {
    const auto type = dtype_from_id(w.id);
    ASSERT_TRUE(type.has_value()) << w.id;
    EXPECT_EQ(dtype_info(*type).name, w.name);
    EXPECT_EQ(dtype_info(*type).block_elems, w.elems);
    EXPECT_EQ(dtype_info(*type).block_bytes, w.bytes);
    EXPECT_EQ(dtype_from_name(w.name), type);
  }
  EXPECT_FALSE(dtype_from_id(15).has_value());  // Q8_K: an activation format, never a weight here
  EXPECT_FALSE(dtype_from_id(16).has_value());  // IQ2_XXS: not supported
}

TEST(BlockQuants, HandDecodedBlocks) {
  float out[kQKBlock];
  {  // Q5_1: d = 0.5, m = -1, element 3 = nibble 7 with fifth bit -> 23 · 0.5 - 1.
    BlockQ5_1 b{};
    b.d = f32_to_fp16(0.5f);
    b.m = f32_to_fp16(-1.0f);
    b.qs[3] = 0x07;
    b.qh[0] = 0x08;   // bit 3
    b.qs[2] = 0x50;   // element 18 = high nibble of qs[2] = 5, no fifth bit
    dequantize_row_ref(DType::Q5_1, &b, out, kQ4Block);
    EXPECT_EQ(out[3], 23 * 0.5f - 1.0f);
    EXPECT_EQ(out[18], 5 * 0.5f - 1.0f);
    EXPECT_EQ(out[0], -1.0f);
  }
  {  // IQ4_NL: nibble 0 -> -127, 15 -> 113.
    BlockIQ4_NL b{};
    b.d = f32_to_fp16(0.25f);
    b.qs[0] = 0xf0;  // element 0 = 0, element 16 = 15
    dequantize_row_ref(DType::IQ4_NL, &b, out, kQ4Block);
    EXPECT_EQ(out[0], -127 * 0.25f);
    EXPECT_EQ(out[16], 113 * 0.25f);
  }
  {  // Q4_K: sub-block 5 (elements 160..191) has sc = (scales[9] & 15) | (scales[1] >> 6) << 4,
     // m = (scales[9] >> 4) | (scales[5] >> 6) << 4; its codes are the high nibbles of qs[64..95].
    BlockQ4_K b{};
    b.d = f32_to_fp16(2.0f);
    b.dmin = f32_to_fp16(1.0f);
    b.scales[9] = 0x3a;          // sc low 10, m low 3
    b.scales[1] = 0x40;          // sc high 1 -> sc = 26
    b.scales[5] = 0x80;          // m high 2 -> m = 35
    b.qs[64 + 7] = 0x90;         // element 160 + 7 = 9
    dequantize_row_ref(DType::Q4_K, &b, out, kQKBlock);
    EXPECT_EQ(out[167], 2.0f * 26 * 9 - 35.0f);
    EXPECT_EQ(out[160], -35.0f);
  }
  {  // Q6_K: element 128 + 64 + 5 (half 1, k = 2) = low: high nibble of ql[64 + 5], high: bits
     // 4-5 of qh[32 + 5]; scale group (128 + 69) / 16 = 12.
    BlockQ6_K b{};
    b.d = f32_to_fp16(0.5f);
    b.scales[12] = -3;
    b.ql[69] = 0xc0;   // low 4 bits 12
    b.qh[37] = 0x20;   // high 2 bits 2 -> code 44, value 12
    dequantize_row_ref(DType::Q6_K, &b, out, kQKBlock);
    EXPECT_EQ(out[197], 0.5f * -3 * 12);
    EXPECT_EQ(out[196], 0.5f * -3 * -32);
  }
  {  // Q3_K: element 128 + 32·3 + 4 = 228: 2-bit code bits 6-7 of qs[32 + 4], hmask bit 7 of
     // hmask[4]; scale 14 = low: scales[6] >> 4, high: bits 6-7 of scales[10].
    BlockQ3_K b{};
    b.d = f32_to_fp16(1.0f);
    b.qs[36] = 0x80;       // code 2
    b.hmask[4] = 0x00;     // clear: value 2 - 4 = -2
    b.scales[6] = 0x50;    // low 4 bits 5
    b.scales[10] = 0x80;   // high 2 bits 2 -> 37 - 32 = 5
    dequantize_row_ref(DType::Q3_K, &b, out, kQKBlock);
    EXPECT_EQ(out[228], 5.0f * -2);
    b.hmask[4] = 0x80;     // set: value 2
    dequantize_row_ref(DType::Q3_K, &b, out, kQKBlock);
    EXPECT_EQ(out[228], 5.0f * 2);
  }
  {  // Q2_K: element 32·2 + 9 = 73: bits 4-5 of qs[9]; group 4: scale 4 low nibble, min high.
    BlockQ2_K b{};
    b.d = f32_to_fp16(0.5f);
    b.dmin = f32_to_fp16(0.25f);
    b.qs[9] = 0x30;        // code 3
    b.scales[4] = 0x27;    // scale 7, min 2
    dequantize_row_ref(DType::Q2_K, &b, out, kQKBlock);
    EXPECT_EQ(out[73], 0.5f * 7 * 3 - 0.25f * 2);
  }
}

TEST(BlockQuants, RoundTripErrorBounds) {
  // RMS error relative to the RMS of the input, about 1.3x what these simple quantizers measured
  // on this data (q4_1 0.060, q5_0 0.033, q5_1 0.029, iq4_nl 0.071, q2_K 0.265, q3_K 0.125,
  // q4_K 0.060, q5_K 0.029, q6_K 0.015): a layout or rounding bug costs far more than 1.3x.
  const struct {
    DType type;
    double max_relative_rms;
  } cases[] = {{DType::Q4_1, 0.08}, {DType::Q5_0, 0.045}, {DType::Q5_1, 0.04}, {DType::IQ4_NL, 0.09},
               {DType::Q2_K, 0.35}, {DType::Q3_K, 0.17}, {DType::Q4_K, 0.08}, {DType::Q5_K, 0.04},
               {DType::Q6_K, 0.02}};
  const int64_t n = 4 * kQKBlock;
  const std::vector<float> x = random_floats(n, 7);
  for (const auto& c : cases) {
    std::vector<uint8_t> q(row_bytes(c.type, n));  // [row_bytes]
    std::vector<float> back(static_cast<size_t>(n)), back_fast(static_cast<size_t>(n));  // [n]
    quantize_row(c.type, x.data(), q.data(), n);
    dequantize_row_ref(c.type, q.data(), back.data(), n);
    dequantize_row(c.type, q.data(), back_fast.data(), n);
    double err = 0, norm = 0;
    for (int64_t i = 0; i < n; ++i) {
      err += (back[i] - x[i]) * (back[i] - x[i]);
      norm += x[i] * x[i];
      // Fast dequantization: the same value up to a fused multiply-add's single rounding.
      ASSERT_NEAR(back[i], back_fast[i], 2 * kUnitRoundoff * (std::fabs(back[i]) + 1e-3));
    }
    EXPECT_LT(std::sqrt(err / norm), c.max_relative_rms) << dtype_info(c.type).name;
    // Quantizing the dequantized row again reproduces it: the codes are a fixed point.
    std::vector<uint8_t> q2(q.size());
    quantize_row_ref(c.type, back.data(), q2.data(), n);
    std::vector<float> back2(static_cast<size_t>(n));
    dequantize_row_ref(c.type, q2.data(), back2.data(), n);
    double drift = 0;
    for (int64_t i = 0; i < n; ++i) drift = std::max(drift, std::fabs(static_cast<double>(back2[i]) - back[i]));
    EXPECT_LT(drift, 0.5 * std::sqrt(err / n) + 1e-6) << dtype_info(c.type).name;
  }
}

TEST(BlockQuants, MatvecMatchesScalarTwinAndDequantizedDot) {
  const int64_t rows = 37;  // odd: exercises every thread split and the row remainder
  for (const int64_t cols : {int64_t{256}, int64_t{768}}) {
    const std::vector<float> x = random_floats(cols, 11);
    for (const DType type : kBlockTypes) {
      for (const bool from_quantizer : {false, true}) {
        std::vector<uint8_t> w = random_blocks(type, rows, cols, 3);
        if (from_quantizer) {
          const std::vector<float> values = random_floats(rows * cols, 5);  // [rows, cols]
          for (int64_t r = 0; r < rows; ++r)
            quantize_row_ref(type, values.data() + r * cols, w.data() + r * row_bytes(type, cols), cols);
        }
        std::vector<float> y(static_cast<size_t>(rows)), y_ref(static_cast<size_t>(rows));  // [rows]
        matvec(type, w.data(), x.data(), y.data(), rows, cols, nullptr);
        matvec_ref(type, w.data(), x.data(), y_ref.data(), rows, cols);
        const std::vector<float> xr = rounded_activation(type, x.data(), cols);
        std::vector<float> row(static_cast<size_t>(cols));  // [cols]
        for (int64_t r = 0; r < rows; ++r) {
          dequantize_row_ref(type, w.data() + r * row_bytes(type, cols), row.data(), cols);
          double exact = 0, abs_sum = 0;
          for (int64_t i = 0; i < cols; ++i) {
            exact += static_cast<double>(row[i]) * xr[i];
            abs_sum += std::fabs(static_cast<double>(row[i]) * xr[i]);
          }
          // Same integer block sums and the same f32 operations on them; only where the compiler
          // fuses a multiply-add may differ: one rounding per block term.
          const double blocks = static_cast<double>(cols / dtype_info(type).block_elems);
          EXPECT_NEAR(y[r], y_ref[r], 4.0 * blocks * kUnitRoundoff * abs_sum) << dtype_info(type).name << " row " << r;
          // Summation order: 2·n·u·Σ|terms|. Q4_1/Q5_1 also take the minimum's term through the
          // fp16 block sum s = fp16(d·Σq) with d unrounded: two fp16 roundings (2^-11 each) of a
          // term bounded by Σ|terms|.
          const bool fp16_sum = type == DType::Q4_1 || type == DType::Q5_1;
          const double tol = 2.0 * cols * kUnitRoundoff * abs_sum + (fp16_sum ? 0x1p-10 * abs_sum : 0.0);
          EXPECT_NEAR(y[r], exact, tol) << dtype_info(type).name << " row " << r;
        }
      }
    }
  }
}

TEST(BlockQuants, MatvecThreadCountsAgreeExactly) {
  const int64_t rows = 301, cols = 512;  // 301 rows of Q6_K = 129 KiB: above the threading floor
  const std::vector<float> x = random_floats(cols, 13);
  ThreadPool one(1), two(2), three(3);
  for (const DType type : kBlockTypes) {
    const std::vector<uint8_t> w = random_blocks(type, rows, cols, 17);
    std::vector<float> y0(rows), y1(rows), y2(rows), y3(rows);  // [rows]
    matvec(type, w.data(), x.data(), y0.data(), rows, cols, nullptr);
    matvec(type, w.data(), x.data(), y1.data(), rows, cols, &one);
    matvec(type, w.data(), x.data(), y2.data(), rows, cols, &two);
    matvec(type, w.data(), x.data(), y3.data(), rows, cols, &three);
    EXPECT_EQ(y0, y1) << dtype_info(type).name;
    EXPECT_EQ(y0, y2) << dtype_info(type).name;
    EXPECT_EQ(y0, y3) << dtype_info(type).name;
  }
}

// The row kernels put 8 rows in the vector lanes: any row range gives each row the bits it gets
// in the whole matrix (a lane never mixes with its neighbours, whatever rows fill the group),
// and nothing outside the range is written.
TEST(BlockQuants, RowKernelGivesEachRowTheSameBitsInAnyRange) {
  const int64_t rows = 21, cols = 512;
  const std::vector<float> x = random_floats(cols, 61);
  for (const DType type : kBlockTypes) {
    const std::vector<uint8_t> w = random_blocks(type, rows, cols, 67);
    const size_t stride = row_bytes(type, cols);
    detail::QuantizedActivation xa;
    detail::quantize_activation(type, x.data(), cols, &xa);
    std::vector<float> whole(static_cast<size_t>(rows));  // [rows]
    detail::dot_block_quant_rows(type, w.data(), stride, xa, cols, whole.data(), 0, rows);
    for (const int64_t begin : {int64_t{0}, int64_t{1}, int64_t{5}, int64_t{13}}) {
      for (const int64_t end : {begin + 1, begin + 3, begin + 8, rows}) {
        std::vector<float> part(static_cast<size_t>(rows), NAN);  // [rows]
        detail::dot_block_quant_rows(type, w.data(), stride, xa, cols, part.data(), begin, end);
        for (int64_t r = 0; r < rows; ++r) {
          const std::string where = std::string(dtype_info(type).name) + " rows [" + std::to_string(begin) + ", " +
                                    std::to_string(end) + ") row " + std::to_string(r);
          if (r >= begin && r < end) {
            ASSERT_EQ(part[r], whole[r]) << where;
          } else {
            ASSERT_TRUE(std::isnan(part[r])) << where;
          }
        }
      }
    }
  }
}

// Batched decode (one token of several sequences): every token's row is matvec's, bit for bit.
TEST(BlockQuants, MatvecBatchRowsAreMatvecs) {
  const int64_t rows = 45, cols = 512, n_tokens = 3;
  const std::vector<float> x = random_floats(n_tokens * cols, 29);  // [n_tokens, cols]
  ThreadPool two(2);
  for (const DType type : kBlockTypes) {
    const std::vector<uint8_t> w = random_blocks(type, rows, cols, 31);
    std::vector<float> batched(static_cast<size_t>(n_tokens * rows)), single(static_cast<size_t>(rows));
    matvec_batch(type, w.data(), x.data(), batched.data(), n_tokens, rows, cols, &two);
    for (int64_t t = 0; t < n_tokens; ++t) {
      matvec(type, w.data(), x.data() + t * cols, single.data(), rows, cols, &two);
      for (int64_t r = 0; r < rows; ++r)
        ASSERT_EQ(batched[t * rows + r], single[r]) << dtype_info(type).name << " token " << t << " row " << r;
    }
  }
}

TEST(BlockQuants, MatmulAgreesWithMatvecPerToken) {
  const int64_t rows = 45, cols = 512, n_tokens = 21;  // 21 tokens: above the GEMM threshold
  const std::vector<float> x = random_floats(n_tokens * cols, 19);  // [n_tokens, cols]
  ThreadPool two(2);
  for (const DType type : kBlockTypes) {
    const std::vector<uint8_t> w = random_blocks(type, rows, cols, 23);
    std::vector<float> y(static_cast<size_t>(n_tokens * rows));  // [n_tokens, rows]
    matmul(type, w.data(), x.data(), y.data(), n_tokens, rows, cols, &two);
    std::vector<float> yv(static_cast<size_t>(rows)), row(static_cast<size_t>(cols));
    for (int64_t t = 0; t < n_tokens; ++t) {
      matvec(type, w.data(), x.data() + t * cols, yv.data(), rows, cols, &two);
      const std::vector<float> xr = rounded_activation(type, x.data() + t * cols, cols);
      for (int64_t r = 0; r < rows; ++r) {
        dequantize_row_ref(type, w.data() + r * row_bytes(type, cols), row.data(), cols);
        double abs_sum = 0;
        for (int64_t i = 0; i < cols; ++i) abs_sum += std::fabs(static_cast<double>(row[i]) * xr[i]);
        // Both are within the dequantized-dot bound of the previous test of the same sum.
        const bool fp16_sum = type == DType::Q4_1 || type == DType::Q5_1;
        const double tol = 4.0 * cols * kUnitRoundoff * abs_sum + (fp16_sum ? 0x1p-10 * abs_sum : 0.0);
        EXPECT_NEAR(y[t * rows + r], yv[r], tol) << dtype_info(type).name << " token " << t << " row " << r;
      }
    }
  }
}

// The K-quant kernels put 8 rows (matvec) or 8 tokens (matvec_batch, matmul) in the vector lanes:
// row and token counts around those groups, against the scalar twin, and the three paths
// against each other bit for bit (each token of a batch or prefill gets matvec's result).
TEST(BlockQuants, GroupedKernelsMatchTwinAndEachOtherForAnyRowAndTokenCount) {
  const int64_t cols = 512;
  ThreadPool two(2);
  for (const DType type : kBlockTypes) {
    const bool k_quant = detail::activation_format(type) == detail::ActivationFormat::kQ8_K;
    for (const int64_t rows : {int64_t{1}, int64_t{7}, int64_t{8}, int64_t{9}, int64_t{23}}) {
      const std::vector<uint8_t> w = random_blocks(type, rows, cols, 41 + static_cast<uint32_t>(rows));
      for (const int64_t n_tokens : {int64_t{2}, int64_t{7}, int64_t{8}, int64_t{9}, int64_t{17}}) {
        const std::vector<float> x = random_floats(n_tokens * cols, 43 + static_cast<uint32_t>(n_tokens));  // [n_tokens, cols]
        std::vector<float> batched(static_cast<size_t>(n_tokens * rows));  // [n_tokens, rows]
        std::vector<float> product(static_cast<size_t>(n_tokens * rows));  // [n_tokens, rows]
        matvec_batch(type, w.data(), x.data(), batched.data(), n_tokens, rows, cols, &two);
        matmul(type, w.data(), x.data(), product.data(), n_tokens, rows, cols, nullptr);
        std::vector<float> single(static_cast<size_t>(rows)), twin(static_cast<size_t>(rows));  // [rows]
        std::vector<float> row(static_cast<size_t>(cols));                                       // [cols]
        for (int64_t t = 0; t < n_tokens; ++t) {
          matvec(type, w.data(), x.data() + t * cols, single.data(), rows, cols, nullptr);
          matvec_ref(type, w.data(), x.data() + t * cols, twin.data(), rows, cols);
          const std::vector<float> xr = rounded_activation(type, x.data() + t * cols, cols);
          for (int64_t r = 0; r < rows; ++r) {
            const auto where = [&] {
              return std::string(dtype_info(type).name) + " rows " + std::to_string(rows) + " tokens " +
                     std::to_string(n_tokens) + " token " + std::to_string(t) + " row " + std::to_string(r);
            };
            ASSERT_EQ(batched[t * rows + r], single[r]) << where();
            if (k_quant) {
              ASSERT_EQ(product[t * rows + r], single[r]) << where();
            }
            dequantize_row_ref(type, w.data() + r * row_bytes(type, cols), row.data(), cols);
            double abs_sum = 0;
            for (int64_t i = 0; i < cols; ++i) abs_sum += std::fabs(static_cast<double>(row[i]) * xr[i]);
            // As MatvecMatchesScalarTwinAndDequantizedDot: one rounding per block term may differ.
            const double blocks = static_cast<double>(cols / dtype_info(type).block_elems);
            EXPECT_NEAR(single[r], twin[r], 4.0 * blocks * kUnitRoundoff * abs_sum) << where();
          }
        }
      }
    }
  }
}

// The AVX2 Q8_K quantizer the K-quant kernels use gives the reference's codes, scales and sums
// bit for bit: random rows, an all-zero block, a block whose largest magnitude occurs first
// negative then positive (the first decides d's sign), and one where it is positive first.
TEST(BlockQuants, FastQ8KQuantizerIsTheReference) {
#if defined(FLASHMEM_KQUANT_SIMD)
  const int64_t n = 6 * kQKBlock;
  std::vector<float> x = random_floats(n, 53);  // [n]
  std::fill(x.begin() + kQKBlock, x.begin() + 2 * kQKBlock, 0.0f);
  x[2 * kQKBlock + 17] = -3.0f;
  x[2 * kQKBlock + 200] = 3.0f;
  x[3 * kQKBlock + 5] = 2.5f;
  x[3 * kQKBlock + 6] = -2.5f;
  x[4 * kQKBlock + 255] = 7.0f;  // the last element
  detail::ActivationQ8K fast, ref;
  detail::quantize_kquant_activation(x.data(), n, &fast);
  detail::quantize_activation_q8k(x.data(), n, &ref);
  EXPECT_EQ(fast.n_blocks, ref.n_blocks);
  EXPECT_EQ(fast.qs, ref.qs);
  EXPECT_EQ(fast.d, ref.d);
  EXPECT_EQ(fast.bsums, ref.bsums);
  EXPECT_GT(ref.d[2], 0.0f);  // d = max/-127: the cases above are the ones meant
  EXPECT_LT(ref.d[3], 0.0f);
#else
  GTEST_SKIP() << "no AVX2 kernels in this build";
#endif
}

}  // namespace
}  // namespace flashmem
