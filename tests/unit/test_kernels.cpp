// Fast kernels against their scalar _ref twins, plus hand-checked conversions and quantizers.
// Tolerances are derived from f32 rounding: a sum of n terms computed in two different orders
// differs by at most about 2·n·u·Σ|terms| (u = 2^-24); integer block sums are exact in both.
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <limits>
#include <random>
#include <vector>

#include "tensor/convert.h"
#include "tensor/kernels.h"

#if defined(__F16C__)
#include <immintrin.h>
#endif

namespace flashmem {
namespace {

constexpr double kUnitRoundoff = 0x1p-24;

// Uniform in [-1, 1) from a seeded engine, independent of the standard library's distributions.
std::vector<float> random_floats(int64_t n, uint32_t seed, float scale = 1.0f) {
  std::mt19937 rng(seed);
  std::vector<float> v(static_cast<size_t>(n));  // [n]
  for (float& f : v) f = scale * (static_cast<float>(rng() >> 8) * 0x1p-23f - 1.0f);
  return v;
}

[[maybe_unused]] uint32_t bits_of(float f) {
  uint32_t u;
  std::memcpy(&u, &f, 4);
  return u;
}

[[maybe_unused]] float float_of(uint32_t u) {
  float f;
  std::memcpy(&f, &u, 4);
  return f;
}

bool is_quantized(DType type) { return type == DType::Q8_0 || type == DType::Q4_0; }

const DType kAllTypes[] = {DType::F32, DType::F16, DType::BF16, DType::Q8_0, DType::Q4_0};

// Weight matrix [rows, cols] of `type` made from random f32 values.
std::vector<uint8_t> random_weights(DType type, int64_t rows, int64_t cols, uint32_t seed) {
  const std::vector<float> values = random_floats(rows * cols, seed);  // [rows, cols]
  const size_t stride = row_bytes(type, cols);
  std::vector<uint8_t> w(stride * static_cast<size_t>(rows));  // [rows, row_bytes]
  for (int64_t r = 0; r < rows; ++r) quantize_row_ref(type, values.data() + r * cols, w.data() + r * stride, cols);
  return w;
}

// Σ_i |w_i · x_i| for each row, with x rounded through Q8_0 for quantized weights: the scale
// against which summation-order differences are measured.
std::vector<double> abs_dot_sums(DType type, const uint8_t* w, const float* x, int64_t rows, int64_t cols) {
  std::vector<float> xs(x, x + cols);  // [cols]
  if (is_quantized(type)) {
    std::vector<BlockQ8_0> xq(static_cast<size_t>(cols / kQ8Block));  // [cols / 32]
    quantize_row_ref(DType::Q8_0, x, xq.data(), cols);
    dequantize_row_ref(DType::Q8_0, xq.data(), xs.data(), cols);
  }
  std::vector<float> row(static_cast<size_t>(cols));  // [cols]
  std::vector<double> sums(static_cast<size_t>(rows));  // [rows]
  for (int64_t r = 0; r < rows; ++r) {
    dequantize_row_ref(type, w + r * row_bytes(type, cols), row.data(), cols);
    double s = 0.0;
    for (int64_t i = 0; i < cols; ++i) s += std::fabs(static_cast<double>(row[i]) * xs[i]);
    sums[r] = s;
  }
  return sums;
}

ThreadPool& two_threads() {
  static ThreadPool pool(2);
  return pool;
}

// ---- conversions -------------------------------------------------------------------------------

TEST(Fp16, RoundTripsAllBitPatterns) {
  for (uint32_t h = 0; h < 65536; ++h) {
    const float f = fp16_to_f32(static_cast<uint16_t>(h));
    const uint16_t back = f32_to_fp16(f);
    if (std::isnan(f)) {
      EXPECT_TRUE(std::isnan(fp16_to_f32(back))) << h;
      EXPECT_EQ(back & 0x8000u, h & 0x8000u) << h;
    } else {
      EXPECT_EQ(back, h) << h;
    }
#if defined(__F16C__)
    if (!std::isnan(f)) {
      EXPECT_EQ(bits_of(f), bits_of(_cvtsh_ss(static_cast<uint16_t>(h)))) << h;
    }
#endif
  }
}

TEST(Fp16, RoundsHandCheckedValues) {
  EXPECT_EQ(f32_to_fp16(1.0f), 0x3c00);
  EXPECT_EQ(f32_to_fp16(-2.0f), 0xc000);
  EXPECT_EQ(f32_to_fp16(1.0f + 0x1p-11f), 0x3c00);      // tie between 1 and 1+2^-10 -> even
  EXPECT_EQ(f32_to_fp16(1.0f + 3 * 0x1p-11f), 0x3c02);  // tie between 0x3c01 and 0x3c02 -> even
  EXPECT_EQ(f32_to_fp16(1.0f + 0x1p-11f + 0x1p-20f), 0x3c01);  // just above the tie
  EXPECT_EQ(f32_to_fp16(65504.0f), 0x7bff);             // largest finite
  EXPECT_EQ(f32_to_fp16(65519.0f), 0x7bff);             // below the half-ulp: stays finite
  EXPECT_EQ(f32_to_fp16(65520.0f), 0x7c00);             // tie to even mantissa overflows to inf
  EXPECT_EQ(f32_to_fp16(1e10f), 0x7c00);
  EXPECT_EQ(f32_to_fp16(-std::numeric_limits<float>::infinity()), 0xfc00);
  EXPECT_EQ(f32_to_fp16(0x1p-24f), 0x0001);             // smallest subnormal
  EXPECT_EQ(f32_to_fp16(0x1p-25f), 0x0000);             // tie between 0 and 2^-24 -> even (0)
  EXPECT_EQ(f32_to_fp16(0x1.8p-25f), 0x0001);
  EXPECT_EQ(f32_to_fp16(3 * 0x1p-25f), 0x0002);         // tie between 1 and 2 units -> 2
  EXPECT_EQ(f32_to_fp16(0x1p-14f - 0x1p-26f), 0x0400);  // rounds up into the smallest normal
  EXPECT_EQ(f32_to_fp16(-0.0f), 0x8000);
  const uint16_t nan = f32_to_fp16(std::numeric_limits<float>::quiet_NaN());
  EXPECT_EQ(nan & 0x7c00, 0x7c00);
  EXPECT_NE(nan & 0x03ff, 0);
  EXPECT_EQ(fp16_to_f32(0x0001), 0x1p-24f);
  EXPECT_EQ(fp16_to_f32(0x7bff), 65504.0f);
  EXPECT_TRUE(std::isinf(fp16_to_f32(0x7c00)));
}

#if defined(__F16C__)
TEST(Fp16, MatchesHardwareOnRandomFloats) {
  std::mt19937 rng(7);
  for (int i = 0; i < 1000000; ++i) {
    const float f = float_of(rng());
    const uint16_t expected = _cvtss_sh(f, _MM_FROUND_TO_NEAREST_INT);
    if (std::isnan(f)) {
      EXPECT_TRUE(std::isnan(fp16_to_f32(f32_to_fp16(f))));
    } else {
      ASSERT_EQ(f32_to_fp16(f), expected) << f;
    }
  }
}
#endif

TEST(Bf16, RoundsToNearestEven) {
  EXPECT_EQ(f32_to_bf16(1.0f), 0x3f80);
  EXPECT_EQ(f32_to_bf16(1.0f + 0x1p-8f), 0x3f80);      // tie -> even
  EXPECT_EQ(f32_to_bf16(1.0f + 3 * 0x1p-8f), 0x3f82);  // tie -> even (up)
  EXPECT_EQ(f32_to_bf16(1.0f + 0x1p-8f + 0x1p-20f), 0x3f81);
  EXPECT_TRUE(std::isnan(bf16_to_f32(f32_to_bf16(std::numeric_limits<float>::quiet_NaN()))));
  EXPECT_EQ(round_to_bf16(3.0f), 3.0f);
}

TEST(Rows, F16RowsMatchScalar) {
  for (int64_t n : {1, 7, 8, 9, 31, 33, 100, 769}) {
    const std::vector<float> x = random_floats(n, 11, 1000.0f);
    std::vector<uint16_t> h(static_cast<size_t>(n)), h_ref(static_cast<size_t>(n));  // [n]
    f32_to_f16_row(x.data(), h.data(), n);
    quantize_row_ref(DType::F16, x.data(), h_ref.data(), n);
    EXPECT_EQ(h, h_ref) << n;
    std::vector<float> back(static_cast<size_t>(n)), back_ref(static_cast<size_t>(n));  // [n]
    f16_to_f32_row(h.data(), back.data(), n);
    dequantize_row_ref(DType::F16, h.data(), back_ref.data(), n);
    EXPECT_EQ(back, back_ref) << n;
  }
}

TEST(Rows, FastConversionsMatchReferenceBitExactly) {
  for (DType type : kAllTypes) {
    const std::vector<int64_t> sizes =
        is_quantized(type) ? std::vector<int64_t>{32, 96, 768, 2048} : std::vector<int64_t>{1, 7, 9, 31, 33, 100, 769};
    for (int64_t n : sizes) {
      // Scaled so some blocks have large values; the rounding must still match bit for bit.
      const std::vector<float> x = random_floats(n, 12, 37.0f);
      const size_t bytes = row_bytes(type, n);
      std::vector<uint8_t> q(bytes), q_ref(bytes);  // [row_bytes]
      quantize_row(type, x.data(), q.data(), n);
      quantize_row_ref(type, x.data(), q_ref.data(), n);
      EXPECT_EQ(q, q_ref) << dtype_info(type).name << " n=" << n;
      std::vector<float> y(static_cast<size_t>(n)), y_ref(static_cast<size_t>(n));  // [n]
      dequantize_row(type, q.data(), y.data(), n);
      dequantize_row_ref(type, q.data(), y_ref.data(), n);
      EXPECT_EQ(y, y_ref) << dtype_info(type).name << " n=" << n;
    }
  }
}

TEST(Rows, Q8RoundsTiesAwayFromZero) {
  // amax = 127 gives id = 1, so x·id keeps the .5 fractions and roundf must push them outward.
  std::vector<float> x(32, 0.0f);  // [32]
  x[0] = 127.0f;
  x[1] = 2.5f;
  x[2] = -2.5f;
  x[3] = 0.5f;
  x[4] = -0.5f;
  x[5] = 0.49999997f;
  BlockQ8_0 fast, ref;
  quantize_row(DType::Q8_0, x.data(), &fast, 32);
  quantize_row_ref(DType::Q8_0, x.data(), &ref, 32);
  EXPECT_EQ(std::memcmp(&fast, &ref, sizeof(fast)), 0);
  EXPECT_EQ(ref.qs[1], 3);
  EXPECT_EQ(ref.qs[2], -3);
  EXPECT_EQ(ref.qs[3], 1);
  EXPECT_EQ(ref.qs[4], -1);
  EXPECT_EQ(ref.qs[5], 0);
}

TEST(Rows, Q8TiesInEveryLaneMatchReference) {
  // id = 1 again, with a .5 tie in every one of the 32 positions (each SIMD lane of each vector)
  // and both signs; a second block scaled by 2^-3 keeps the ties (exact in binary).
  std::vector<float> x(64);  // [64]
  x[0] = 127.0f;
  for (int j = 1; j < 32; ++j) x[j] = static_cast<float>(j - 16) + 0.5f;
  for (int j = 0; j < 32; ++j) x[32 + j] = x[j] * 0.125f;
  BlockQ8_0 fast[2], ref[2];
  quantize_row(DType::Q8_0, x.data(), fast, 64);
  quantize_row_ref(DType::Q8_0, x.data(), ref, 64);
  EXPECT_EQ(std::memcmp(fast, ref, sizeof(fast)), 0);
  EXPECT_EQ(ref[0].qs[1], -15);  // -14.5 -> -15
  EXPECT_EQ(ref[0].qs[31], 16);  // 15.5 -> 16
}

TEST(Quantize, Q8HandComputedBlock) {
  std::vector<float> x(32);  // [32]
  for (int j = 0; j < 32; ++j) x[j] = static_cast<float>(j - 16);
  BlockQ8_0 block;
  quantize_row_ref(DType::Q8_0, x.data(), &block, 32);
  // amax = 16, d = 16/127 = 0.125984 -> fp16 0x3008 (2^-3 · (1 + 8/1024)); id = 127/16 = 7.9375.
  EXPECT_EQ(block.d, 0x3008);
  EXPECT_EQ(block.qs[0], -127);  // -16 · 7.9375
  EXPECT_EQ(block.qs[15], -8);   // -1 · 7.9375 = -7.9375
  EXPECT_EQ(block.qs[16], 0);
  EXPECT_EQ(block.qs[17], 8);
  EXPECT_EQ(block.qs[18], 16);   // 15.875
  EXPECT_EQ(block.qs[20], 32);   // 31.75
  EXPECT_EQ(block.qs[31], 119);  // 119.0625
}

TEST(Quantize, Q4HandComputedBlock) {
  std::vector<float> x(32);  // [32]
  for (int j = 0; j < 32; ++j) x[j] = static_cast<float>(j - 16);
  BlockQ4_0 block;
  quantize_row_ref(DType::Q4_0, x.data(), &block, 32);
  // max = -16 (largest magnitude, sign kept), d = -16 / -8 = 2, id = 0.5;
  // q_j = min(15, trunc((j - 16) · 0.5 + 8.5)) = min(15, trunc(j/2 + 0.5)).
  EXPECT_EQ(block.d, 0x4000);
  EXPECT_EQ(block.qs[0], 0x80);   // q0 = 0, q16 = 8
  EXPECT_EQ(block.qs[1], 0x91);   // q1 = 1, q17 = 9
  EXPECT_EQ(block.qs[2], 0x91);   // q2 = trunc(1.5) = 1, q18 = trunc(9.5) = 9
  EXPECT_EQ(block.qs[15], 0xf8);  // q15 = 8, q31 = min(15, 16) = 15
  std::vector<float> back(32);    // [32]
  dequantize_row_ref(DType::Q4_0, &block, back.data(), 32);
  EXPECT_EQ(back[0], -16.0f);
  EXPECT_EQ(back[31], 14.0f);
}

TEST(Quantize, ErrorBounds) {
  const int64_t n = 4096;
  const std::vector<float> x = random_floats(n, 13, 3.0f);
  std::vector<BlockQ8_0> q8(n / kQ8Block);  // [n / 32]
  std::vector<BlockQ4_0> q4(n / kQ4Block);  // [n / 32]
  quantize_row(DType::Q8_0, x.data(), q8.data(), n);
  quantize_row(DType::Q4_0, x.data(), q4.data(), n);
  std::vector<float> y8(n), y4(n);  // [n]
  dequantize_row(DType::Q8_0, q8.data(), y8.data(), n);
  dequantize_row(DType::Q4_0, q4.data(), y4.data(), n);
  for (int64_t b = 0; b < n / 32; ++b) {
    float amax = 0.0f;
    for (int j = 0; j < 32; ++j) amax = std::max(amax, std::fabs(x[b * 32 + j]));
    // Q8_0: half a step d = amax/127, plus up to 127 steps of fp16 error in d (2^-11 relative).
    const float bound8 = amax / 127.0f * (0.5f + 127.0f * 0x1p-11f) * 1.001f;
    // Q4_0: step |d| = amax/8; values within half a step, except the +8 side clamped to 7 (one
    // full step); plus 8 steps of fp16 error in d.
    const float bound4 = amax / 8.0f * (1.0f + 8.0f * 0x1p-11f) * 1.001f;
    for (int j = 0; j < 32; ++j) {
      const int64_t i = b * 32 + j;
      EXPECT_LE(std::fabs(y8[i] - x[i]), bound8) << i;
      EXPECT_LE(std::fabs(y4[i] - x[i]), bound4) << i;
    }
  }
}

// ---- vector ops ----------------------------------------------------------------------------------

TEST(VectorOps, MatchReference) {
  // Around every SIMD width (8 for AVX2, 16 for AVX-512) and its unrolled multiples, so each
  // path's main loop, remainder loop and masked tail all run; 64 and 128 are attention head dims.
  for (int64_t n : {1, 7, 8, 9, 15, 16, 17, 31, 33, 64, 100, 128, 769}) {
    const std::vector<float> a = random_floats(n, 21), b = random_floats(n, 22);
    std::vector<uint16_t> a16(static_cast<size_t>(n));  // [n]
    f32_to_f16_row(a.data(), a16.data(), n);
    double abs_sum = 0.0, abs_sum16 = 0.0;
    for (int64_t i = 0; i < n; ++i) {
      abs_sum += std::fabs(static_cast<double>(a[i]) * b[i]);
      abs_sum16 += std::fabs(static_cast<double>(fp16_to_f32(a16[i])) * b[i]);
    }
    // Summation order differs (SIMD lanes vs sequential): 2·n·u·Σ|a·b|.
    EXPECT_NEAR(dot_f32(a.data(), b.data(), n), dot_f32_ref(a.data(), b.data(), n),
                2 * n * kUnitRoundoff * abs_sum) << n;
    EXPECT_NEAR(dot_f16_f32(a16.data(), b.data(), n), dot_f16_f32_ref(a16.data(), b.data(), n),
                2 * n * kUnitRoundoff * abs_sum16) << n;

    // axpy: fused multiply-add vs multiply then add, one rounding each: 2u·(|αx| + |y|).
    const float alpha = 0.37f;
    std::vector<float> y = b, y_ref = b, y16 = b, y16_ref = b;  // [n]
    axpy_f32(alpha, a.data(), y.data(), n);
    axpy_f32_ref(alpha, a.data(), y_ref.data(), n);
    axpy_f16(alpha, a16.data(), y16.data(), n);
    axpy_f16_ref(alpha, a16.data(), y16_ref.data(), n);
    for (int64_t i = 0; i < n; ++i) {
      const double scale = std::fabs(alpha * a[i]) + std::fabs(b[i]);
      EXPECT_NEAR(y[i], y_ref[i], 2 * kUnitRoundoff * scale * 1.01) << i;
      EXPECT_NEAR(y16[i], y16_ref[i], 2 * kUnitRoundoff * scale * 1.01) << i;
    }

    // rms_norm: the sum of squares differs by 2·n·u relative (all terms positive), which moves
    // 1/sqrt by half that; the two final products add 2u.
    std::vector<float> out(static_cast<size_t>(n)), out_ref(static_cast<size_t>(n));  // [n]
    rms_norm(a.data(), b.data(), out.data(), n, 1e-5f);
    rms_norm_ref(a.data(), b.data(), out_ref.data(), n, 1e-5f);
    for (int64_t i = 0; i < n; ++i)
      EXPECT_NEAR(out[i], out_ref[i], (n + 4) * kUnitRoundoff * std::fabs(out_ref[i]) + 1e-30) << i;
    std::vector<float> in_place = a;  // [n]: x and y may alias
    rms_norm(in_place.data(), b.data(), in_place.data(), n, 1e-5f);
    EXPECT_EQ(in_place, out);
  }
}

// Grouped-query heads sharing one f16 K row: bit-identical to the single-head fast kernel (same
// per-head arithmetic), and within the summation-order bound of the reference.
TEST(VectorOps, GroupedHeadsDotMatchesSingleHeadKernel) {
  for (int64_t n : {1, 7, 8, 9, 16, 17, 64, 100, 128}) {
    for (int64_t n_q : {1, 2, 3, 4, 5, 8}) {
      const std::vector<float> kf = random_floats(n, 71);
      const std::vector<float> q = random_floats(n_q * n, 72);  // [n_q, n]
      std::vector<uint16_t> k(static_cast<size_t>(n));            // [n]
      f32_to_f16_row(kf.data(), k.data(), n);
      std::vector<float> out(static_cast<size_t>(n_q)), out_ref(static_cast<size_t>(n_q));  // [n_q]
      dot_f16_f32_heads(k.data(), q.data(), n_q, n, out.data());
      dot_f16_f32_heads_ref(k.data(), q.data(), n_q, n, out_ref.data());
      for (int64_t g = 0; g < n_q; ++g) {
        EXPECT_EQ(out[g], dot_f16_f32(k.data(), q.data() + g * n, n)) << "n " << n << " g " << g;
        double abs_sum = 0.0;
        for (int64_t i = 0; i < n; ++i) abs_sum += std::fabs(static_cast<double>(fp16_to_f32(k[i])) * q[g * n + i]);
        EXPECT_NEAR(out[g], out_ref[g], 2 * n * kUnitRoundoff * abs_sum) << "n " << n << " g " << g;
      }
    }
  }
}

// ---- matrix products ------------------------------------------------------------------------------

std::vector<int64_t> test_cols(DType type) {
  if (is_quantized(type)) return {32, 64, 96, 768};
  return {1, 31, 33, 100, 769};
}

// Bound on |fast - ref| for one output: both sum `terms` rounded partial results in different
// orders (float types: one product per column; quantized: exact integer block sums, then one
// scaled term per block and per SIMD lane).
double product_tolerance(DType type, int64_t cols, double abs_sum) {
  const int64_t terms = is_quantized(type) ? cols / kQ8Block + 16 : cols + 1;
  return 2.0 * static_cast<double>(terms) * kUnitRoundoff * abs_sum + 1e-30;
}

TEST(Matvec, MatchesReferenceAllTypes) {
  for (DType type : kAllTypes) {
    for (int64_t cols : test_cols(type)) {
      for (int64_t rows : {1, 3, 5, 7, 67}) {
        const std::vector<uint8_t> w = random_weights(type, rows, cols, 31);
        const std::vector<float> x = random_floats(cols, 32);
        std::vector<float> y(static_cast<size_t>(rows)), y_ref(static_cast<size_t>(rows));  // [rows]
        matvec(type, w.data(), x.data(), y.data(), rows, cols, &two_threads());
        matvec_ref(type, w.data(), x.data(), y_ref.data(), rows, cols);
        const std::vector<double> abs_sums = abs_dot_sums(type, w.data(), x.data(), rows, cols);
        for (int64_t r = 0; r < rows; ++r)
          ASSERT_NEAR(y[r], y_ref[r], product_tolerance(type, cols, abs_sums[r]))
              << dtype_info(type).name << " rows=" << rows << " cols=" << cols << " r=" << r;
      }
    }
  }
}

TEST(Matvec, OneAndTwoThreadsAgreeExactly) {
  ThreadPool one(1), three(3);
  for (DType type : kAllTypes) {
    // 67 × 768 is above the single-thread cutoff for every type, and 67 is not a multiple of the
    // 4-row group.
    const int64_t rows = 67, cols = is_quantized(type) ? 768 : 769;
    const std::vector<uint8_t> w = random_weights(type, rows, cols, 41);
    const std::vector<float> x = random_floats(cols, 42);
    std::vector<float> y1(rows), y2(rows), y0(rows);  // [rows]
    matvec(type, w.data(), x.data(), y1.data(), rows, cols, &one);
    matvec(type, w.data(), x.data(), y2.data(), rows, cols, &two_threads());
    matvec(type, w.data(), x.data(), y0.data(), rows, cols, nullptr);
    EXPECT_EQ(y1, y2) << dtype_info(type).name;
    EXPECT_EQ(y1, y0) << dtype_info(type).name;
    std::vector<float> y3(rows);  // [rows]: 3 threads split 67 rows off the 4-row groups
    matvec(type, w.data(), x.data(), y3.data(), rows, cols, &three);
    EXPECT_EQ(y1, y3) << dtype_info(type).name;
  }
}

// One dispatch for several matrices (a layer's Q, K, V): each matrix's y is matvec's, bit for
// bit, whether the thread ranges split a matrix or cross from one into the next (row counts not
// multiples of the 4-row group), on one, two and three threads.
TEST(MatvecMany, EveryMatrixIsBitIdenticalToMatvec) {
  ThreadPool three(3);
  for (DType type : kAllTypes) {
    const int64_t cols = is_quantized(type) ? 768 : 769;
    const std::vector<int64_t> rows = {67, 5, 130, 1};
    std::vector<std::vector<uint8_t>> w;  // per matrix [rows_i, row_bytes]
    for (size_t i = 0; i < rows.size(); ++i) w.push_back(random_weights(type, rows[i], cols, 50 + static_cast<uint32_t>(i)));
    const std::vector<float> x = random_floats(cols, 49);
    for (ThreadPool* pool : {static_cast<ThreadPool*>(nullptr), &two_threads(), &three}) {
      std::vector<std::vector<float>> y;  // per matrix [rows_i]
      std::vector<MatvecTarget> targets;
      for (size_t i = 0; i < rows.size(); ++i) y.emplace_back(static_cast<size_t>(rows[i]), -1.0f);
      for (size_t i = 0; i < rows.size(); ++i) targets.push_back({w[i].data(), y[i].data(), rows[i]});
      matvec_many(type, targets, x.data(), cols, pool);
      for (size_t i = 0; i < rows.size(); ++i) {
        std::vector<float> alone(static_cast<size_t>(rows[i]));  // [rows_i]
        matvec(type, w[i].data(), x.data(), alone.data(), rows[i], cols, nullptr);
        ASSERT_EQ(0, std::memcmp(alone.data(), y[i].data(), alone.size() * sizeof(float)))
            << dtype_info(type).name << " matrix " << i << " threads " << (pool ? pool->size() : 1);
      }
    }
  }
}

// Batched decode: every token's row of matvec_batch is matvec's, bit for bit, whatever the
// token count, row count (odd, below and above a row block) or thread count.
TEST(MatvecBatch, EveryRowIsBitIdenticalToMatvec) {
  for (DType type : kAllTypes) {
    // 100 × 768 is above the single-thread cutoff for every type; the others run on one thread.
    for (auto [rows, cols] : {std::pair<int64_t, int64_t>{1, 96}, {7, 96}, {37, 96}, {100, 768}}) {
      const std::vector<uint8_t> w = random_weights(type, rows, cols, 31);
      for (int64_t n : {1, 2, 5, 8, 9, 17}) {  // 8 and 17: a whole tile of 8 and a remainder
        const std::vector<float> x = random_floats(n * cols, 32 + static_cast<uint32_t>(n));  // [n, cols]
        for (ThreadPool* pool : {static_cast<ThreadPool*>(nullptr), &two_threads()}) {
          std::vector<float> batched(static_cast<size_t>(n * rows));  // [n, rows]
          matvec_batch(type, w.data(), x.data(), batched.data(), n, rows, cols, pool);
          for (int64_t t = 0; t < n; ++t) {
            std::vector<float> alone(static_cast<size_t>(rows));  // [rows]
            matvec(type, w.data(), x.data() + t * cols, alone.data(), rows, cols, pool);
            ASSERT_EQ(0, std::memcmp(alone.data(), batched.data() + t * rows, alone.size() * 4))
                << dtype_info(type).name << " rows " << rows << " token " << t << " of " << n;
          }
        }
      }
    }
  }
}

// Weight matrix [rows, cols] of Q8_0 or Q4_0 with random codes over the format's whole range
// (Q8_0 includes -128, which no quantizer writes but a file may hold: |w| = 128 is the edge of
// the sign trick's int16 bound and of the dpbusd offset) and random fp16 scales in [2^-10, 2^-6).
std::vector<uint8_t> random_block_codes(DType type, int64_t rows, int64_t cols, uint32_t seed) {
  std::mt19937 rng(seed);
  std::vector<uint8_t> w(row_bytes(type, cols) * static_cast<size_t>(rows));  // [rows, row_bytes]
  for (uint8_t& byte : w) byte = static_cast<uint8_t>(rng());
  const size_t block_bytes = type == DType::Q8_0 ? sizeof(BlockQ8_0) : sizeof(BlockQ4_0);
  for (size_t offset = 0; offset < w.size(); offset += block_bytes) {
    const uint16_t d = f32_to_fp16(0x1p-10f * (1.0f + static_cast<float>(rng() % 15)));
    std::memcpy(w.data() + offset, &d, sizeof d);  // d is the first field of both block types
  }
  return w;
}

// The batched Q8_0/Q4_0 tile kernel against its twins: each token's row bit-identical to matvec
// (the same integer lane sums and f32 operations in the same order) and within the summation-order
// bound of the scalar reference, for row counts around the 4-row group and 8-token tiles, every
// token count up to two tiles and one more, and odd block counts.
TEST(MatvecBatch, BlockTilesMatchMatvecAndReference) {
  for (DType type : {DType::Q8_0, DType::Q4_0}) {
    for (int64_t cols : {32, 96, 224, 800}) {  // 1, 3, 7 and 25 blocks
      for (int64_t rows : {1, 7, 8, 9, 23}) {
        const uint32_t seed = static_cast<uint32_t>(cols * 100 + rows);
        const std::vector<uint8_t> w = random_block_codes(type, rows, cols, seed);
        for (int64_t n = 1; n <= 17; ++n) {
          const std::vector<float> x = random_floats(n * cols, seed + static_cast<uint32_t>(n), 4.0f);  // [n, cols]
          std::vector<float> batched(static_cast<size_t>(n * rows));  // [n, rows]
          matvec_batch(type, w.data(), x.data(), batched.data(), n, rows, cols, nullptr);
          for (int64_t t = 0; t < n; ++t) {
            const float* xt = x.data() + t * cols;
            std::vector<float> alone(static_cast<size_t>(rows)), ref(static_cast<size_t>(rows));  // [rows]
            matvec(type, w.data(), xt, alone.data(), rows, cols, nullptr);
            matvec_ref(type, w.data(), xt, ref.data(), rows, cols);
            const std::vector<double> abs_sums = abs_dot_sums(type, w.data(), xt, rows, cols);
            for (int64_t r = 0; r < rows; ++r) {
              const float got = batched[static_cast<size_t>(t * rows + r)];
              ASSERT_EQ(bits_of(alone[r]), bits_of(got))
                  << dtype_info(type).name << " cols " << cols << " rows " << rows << " tokens " << n << " t " << t << " r " << r;
              ASSERT_NEAR(got, ref[r], product_tolerance(type, cols, abs_sums[r]))
                  << dtype_info(type).name << " cols " << cols << " rows " << rows << " tokens " << n << " t " << t << " r " << r;
            }
          }
        }
      }
    }
  }
}

TEST(Matmul, MatchesReferenceAllTypes) {
  for (DType type : kAllTypes) {
    for (int64_t cols : test_cols(type)) {
      for (int64_t rows : {1, 5, 67, 130}) {
        // 8, 9, 13, 16 and 65 leave every token-tile remainder (2, 3, 1, 4, 5 after tiles of 6);
        // 6, 7, 9 and 16 leave 2, 3, 1 and 0 after the AVX2 int8 GEMM's tiles of 4.
        for (int64_t n_tokens : {1, 2, 3, 6, 7, 8, 9, 13, 16, 65}) {
          const std::vector<uint8_t> w = random_weights(type, rows, cols, 51);
          const std::vector<float> x = random_floats(n_tokens * cols, 52);
          std::vector<float> y(static_cast<size_t>(n_tokens * rows));      // [n_tokens, rows]
          std::vector<float> y_ref(static_cast<size_t>(n_tokens * rows));  // [n_tokens, rows]
          matmul(type, w.data(), x.data(), y.data(), n_tokens, rows, cols, &two_threads());
          matmul_ref(type, w.data(), x.data(), y_ref.data(), n_tokens, rows, cols);
          for (int64_t t = 0; t < n_tokens; ++t) {
            const std::vector<double> abs_sums = abs_dot_sums(type, w.data(), x.data() + t * cols, rows, cols);
            // The tiled path multiplies dequantized values in f32 (one rounding per product, one
            // per addition), so its bound counts every column even for quantized types.
            const double tol_scale = static_cast<double>(cols + 16);
            for (int64_t r = 0; r < rows; ++r)
              ASSERT_NEAR(y[t * rows + r], y_ref[t * rows + r], 2.0 * tol_scale * kUnitRoundoff * abs_sums[r] + 1e-30)
                  << dtype_info(type).name << " n_tokens=" << n_tokens << " rows=" << rows
                  << " cols=" << cols << " t=" << t << " r=" << r;
          }
        }
      }
    }
  }
}

TEST(Matmul, AgreesWithMatvecPerTokenAndAcrossThreadCounts) {
  ThreadPool three(3);
  for (DType type : kAllTypes) {
    const int64_t rows = 130, cols = is_quantized(type) ? 96 : 100, n_tokens = 65;
    const std::vector<uint8_t> w = random_weights(type, rows, cols, 61);
    const std::vector<float> x = random_floats(n_tokens * cols, 62);
    std::vector<float> y1(n_tokens * rows), y2(n_tokens * rows), y3(n_tokens * rows);  // [n_tokens, rows]
    matmul(type, w.data(), x.data(), y1.data(), n_tokens, rows, cols, nullptr);
    matmul(type, w.data(), x.data(), y2.data(), n_tokens, rows, cols, &two_threads());
    matmul(type, w.data(), x.data(), y3.data(), n_tokens, rows, cols, &three);
    EXPECT_EQ(y1, y2) << dtype_info(type).name;
    EXPECT_EQ(y1, y3) << dtype_info(type).name;
    std::vector<float> yv(rows);  // [rows]
    for (int64_t t = 0; t < n_tokens; ++t) {
      matvec(type, w.data(), x.data() + t * cols, yv.data(), rows, cols, &two_threads());
      const std::vector<double> abs_sums = abs_dot_sums(type, w.data(), x.data() + t * cols, rows, cols);
      for (int64_t r = 0; r < rows; ++r)
        ASSERT_NEAR(y1[t * rows + r], yv[r], 2.0 * (cols + 16) * kUnitRoundoff * abs_sums[r] + 1e-30)
            << dtype_info(type).name << " t=" << t << " r=" << r;
    }
  }
}

// K-quant prefill (the repacked-panel int8 GEMM on AVX-512 VNNI builds, the tile kernel
// elsewhere) forms each super-block's exact integer sums in another order than matvec but takes
// the same f32 steps: every (row, token) equals matvec's bit for bit. Rows around the 32-row panel
// and tokens around the 16-token threshold with every remainder of the 4-token tile; 1, 2 and 3
// threads.
TEST(Matmul, KQuantsAreMatvecBitForBit) {
  ThreadPool three(3);
  for (DType type : {DType::Q2_K, DType::Q3_K, DType::Q4_K, DType::Q5_K, DType::Q6_K})
    for (int64_t rows : {1, 31, 33, 70})
      for (int64_t n_tokens : {15, 16, 17, 18, 19}) {
        const int64_t cols = 512;
        const std::vector<uint8_t> w = random_weights(type, rows, cols, 71);
        const std::vector<float> x = random_floats(n_tokens * cols, 72);
        std::vector<float> yv(static_cast<size_t>(rows));  // [rows]
        for (ThreadPool* pool : {static_cast<ThreadPool*>(nullptr), &two_threads(), &three}) {
          std::vector<float> y(static_cast<size_t>(n_tokens * rows));  // [n_tokens, rows]
          matmul(type, w.data(), x.data(), y.data(), n_tokens, rows, cols, pool);
          for (int64_t t = 0; t < n_tokens; ++t) {
            matvec(type, w.data(), x.data() + t * cols, yv.data(), rows, cols, nullptr);
            for (int64_t r = 0; r < rows; ++r)
              ASSERT_EQ(std::memcmp(&y[t * rows + r], &yv[r], sizeof(float)), 0)
                  << dtype_info(type).name << " rows=" << rows << " n_tokens=" << n_tokens << " t=" << t
                  << " r=" << r << ": " << y[t * rows + r] << " vs " << yv[r];
          }
        }
      }
}

}  // namespace
}  // namespace flashmem

namespace flashmem {
namespace {

// exp for softmax: the polynomial's truncation error is < 2e-8 and f32 rounding adds a few ulp,
// so 1e-6 relative per element is a safe bound; the sums add n such errors in f32 order.
TEST(ExpShiftSum, MatchesStdExp) {
  std::mt19937 rng(11);
  std::uniform_real_distribution<float> dist(-30.0f, 5.0f);
  for (int64_t n : {1, 7, 8, 9, 15, 16, 17, 100, 1023}) {
    std::vector<float> x(static_cast<size_t>(n));
    for (float& v : x) v = dist(rng);
    std::vector<float> fast = x, ref = x;
    const float shift = 5.0f;
    const float s_fast = exp_shift_sum(fast.data(), n, shift);
    const float s_ref = exp_shift_sum_ref(ref.data(), n, shift);
    for (int64_t i = 0; i < n; ++i)
      EXPECT_NEAR(fast[static_cast<size_t>(i)], ref[static_cast<size_t>(i)],
                  1e-6f * ref[static_cast<size_t>(i)] + 1e-38f) << "n " << n << " i " << i;
    EXPECT_NEAR(s_fast, s_ref, 1e-5f * s_ref);
  }
  std::vector<float> tiny = {-200.0f, -104.0f, 0.0f};
  exp_shift_sum(tiny.data(), 3, 0.0f);
  EXPECT_EQ(tiny[0], 0.0f);
  EXPECT_EQ(tiny[2], 1.0f);
}

// The ends of the range: results in the f32 subnormal range (where 2^k itself is not a normal
// number) keep the relative bound down to a rounding of the last subnormal step; past 88.72 the
// result overflows to +inf (+inf itself included); -inf gives 0; NaN stays NaN.
TEST(ExpShiftSum, SubnormalOverflowAndNaN) {
  std::vector<float> x;
  for (float v = -103.8f; v < -80.0f; v += 0.37f) x.push_back(v);
  x.push_back(88.0f);
  x.push_back(89.0f);
  x.push_back(1000.0f);
  x.push_back(INFINITY);
  x.push_back(-INFINITY);
  std::vector<float> fast = x, ref = x;
  exp_shift_sum(fast.data(), static_cast<int64_t>(x.size()), 0.0f);
  exp_shift_sum_ref(ref.data(), static_cast<int64_t>(x.size()), 0.0f);
  for (size_t i = 0; i < x.size(); ++i) {
    if (std::isinf(ref[i])) {
      EXPECT_EQ(fast[i], ref[i]) << x[i];
    } else {
      EXPECT_NEAR(fast[i], ref[i], 1e-6f * ref[i] + 0x1p-149f) << x[i];
    }
  }
  std::vector<float> nan = {1.0f, std::numeric_limits<float>::quiet_NaN(), -1.0f};
  exp_shift_sum(nan.data(), 3, 0.0f);
  EXPECT_TRUE(std::isnan(nan[1]));
  EXPECT_NEAR(nan[0], std::exp(1.0f), 1e-6f * std::exp(1.0f));
}

}  // namespace
}  // namespace flashmem
