// Integer GEMM for Q8_0/Q4_0 weights on AVX2 (builds without AVX-512 VNNI): Y[n_tokens, rows] =
// X · W^T with the activations quantized to Q8_0, the same exact integer block sums matvec
// forms, at 32 int8 multiply-adds per maddubs instead of 8 f32 FMAs per vector.
//
// Per panel of 8 weight rows, the weights are repacked once (as signed bytes; Q4_0 nibbles
// become q - 8) so that for each 32-element block and each group of 4 columns, the 4 bytes of
// each of the 8 rows lie side by side: one 32-byte load feeds all 8 rows, against one broadcast
// of 4 activation bytes per token. maddubs multiplies unsigned by signed bytes, so it gets |w|
// and x with w's sign (the sign trick: |w|·sign(x, w) = w·x); its int16 pair sums stay within
// 2·127·127 < 2^15, and madd with ones widens them to one int32 per row and group of 4.
#include <algorithm>
#include <cstring>
#include <vector>

#include "tensor/convert.h"
#include "tensor/kernels.h"
#include "tensor/kernels_internal.h"
#include "tensor/simd.h"

namespace flashmem::detail {

#if defined(FLASHMEM_INT8_GEMM_AVX2)

namespace {

// One vector of 8 rows per panel: with kTileTokens = 4 the tile keeps 4 int32 block sums and 4
// f32 accumulators, plus the weights, their magnitudes, a broadcast and the constant 1s, within
// the 16 ymm registers.
constexpr int kPanelRows = 8;
constexpr int kTileTokens = 4;
constexpr int kGroups = kQ8Block / 4;  // 4-column groups per block

// Measured against matvec per token on 2048 × 768 (one thread, Zen3): even at 4 tokens, ahead
// by 1.3× at 6 and 1.4-1.6× at 8 (Q8_0 and Q4_0 alike, packing being one transpose per block).
constexpr int64_t kMinTokens = 6;

struct PackedPanel {
  std::vector<int8_t> qs;     // [n_blocks, kGroups, kPanelRows, 4] signed weights
  std::vector<float> scales;  // [n_blocks, kPanelRows] d_w (0 for padding rows)
};

struct PackedActivations {
  std::vector<int8_t> qs;  // [n_tokens, cols] Q8_0 codes
  std::vector<float> d;    // [n_tokens, n_blocks] block scales
};

void pack_activations(const float* x, int64_t n_tokens, int64_t cols, PackedActivations* out,
                      ThreadPool* pool) {
  const int64_t n_blocks = cols / kQ8Block;
  out->qs.resize(static_cast<size_t>(n_tokens * cols));
  out->d.resize(static_cast<size_t>(n_tokens * n_blocks));
  int8_t* qs = out->qs.data();
  float* d = out->d.data();
  const auto work = [&](int64_t begin, int64_t end) {
    std::vector<BlockQ8_0> blocks(static_cast<size_t>(n_blocks));  // [n_blocks]
    for (int64_t t = begin; t < end; ++t) {
      quantize_row(DType::Q8_0, x + t * cols, blocks.data(), cols);
      for (int64_t b = 0; b < n_blocks; ++b) {
        d[t * n_blocks + b] = _cvtsh_ss(blocks[b].d);
        std::memcpy(qs + t * cols + b * kQ8Block, blocks[b].qs, kQ8Block);
      }
    }
  };
  parallel_for(pool, n_tokens, 1, work);
}

// One block of a weight row as 32 signed bytes (Q4_0: low nibbles are elements 0-15, high
// nibbles 16-31, each minus 8).
inline __m256i load_block(DType type, const uint8_t* row, int64_t b) {
  if (type == DType::Q8_0) {
    return _mm256_loadu_si256(reinterpret_cast<const __m256i*>(reinterpret_cast<const BlockQ8_0*>(row)[b].qs));
  }
  const __m128i packed = _mm_loadu_si128(reinterpret_cast<const __m128i*>(reinterpret_cast<const BlockQ4_0*>(row)[b].qs));
  const __m128i low_mask = _mm_set1_epi8(0x0f);
  const __m256i nibbles = _mm256_set_m128i(_mm_and_si128(_mm_srli_epi16(packed, 4), low_mask),
                                           _mm_and_si128(packed, low_mask));
  return _mm256_sub_epi8(nibbles, _mm256_set1_epi8(8));
}

inline uint16_t block_scale_bits(DType type, const uint8_t* row, int64_t b) {
  return type == DType::Q8_0 ? reinterpret_cast<const BlockQ8_0*>(row)[b].d
                             : reinterpret_cast<const BlockQ4_0*>(row)[b].d;
}

// Rows [0, n_rows) of W (n_rows <= kPanelRows) into `panel`; missing rows are zero. Per block,
// the 8 rows' 32 bytes are an 8 × 8 matrix of 4-byte groups, and the packed order is its
// transpose: one register transpose (on the bytes reinterpreted as f32, which only moves them)
// per block instead of 64 scalar copies.
void pack_panel(DType type, const uint8_t* w, size_t stride, int64_t n_rows, int64_t n_blocks,
                PackedPanel* panel) {
  panel->qs.resize(static_cast<size_t>(n_blocks * kQ8Block * kPanelRows));
  panel->scales.resize(static_cast<size_t>(n_blocks * kPanelRows));
  for (int64_t b = 0; b < n_blocks; ++b) {
    __m256 v[kPanelRows];
    for (int r = 0; r < kPanelRows; ++r) {
      const bool valid = r < n_rows;
      v[r] = valid ? _mm256_castsi256_ps(load_block(type, w + r * stride, b)) : _mm256_setzero_ps();
      panel->scales[b * kPanelRows + r] = valid ? _cvtsh_ss(block_scale_bits(type, w + r * stride, b)) : 0.0f;
    }
    simd::transpose_8x8(v);
    int8_t* dst = panel->qs.data() + b * kQ8Block * kPanelRows;
    for (int g = 0; g < kGroups; ++g)
      _mm256_storeu_ps(reinterpret_cast<float*>(dst + g * kPanelRows * 4), v[g]);
  }
}

// y[MT, 8] = Σ_b d_x·d_w·(Σ q_x·q_w) for MT tokens against one panel; writes n_valid columns.
template <int MT>
void int8_tile(const PackedActivations& xq, int64_t t0, int64_t cols, const PackedPanel& panel,
               float* y, int64_t ldy, int64_t n_valid) {
  const int64_t n_blocks = cols / kQ8Block;
  const int8_t* xrow[MT];
  const float* drow[MT];
  for (int t = 0; t < MT; ++t) {
    xrow[t] = xq.qs.data() + (t0 + t) * cols;
    drow[t] = xq.d.data() + (t0 + t) * n_blocks;
  }
  const __m256i ones = _mm256_set1_epi16(1);
  __m256 acc[MT];
  for (int t = 0; t < MT; ++t) acc[t] = _mm256_setzero_ps();
  for (int64_t b = 0; b < n_blocks; ++b) {
    __m256i isum[MT];
    for (int t = 0; t < MT; ++t) isum[t] = _mm256_setzero_si256();
    const int8_t* qs = panel.qs.data() + b * kQ8Block * kPanelRows;
#pragma GCC unroll 8
    for (int g = 0; g < kGroups; ++g) {
      const __m256i w = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(qs + g * kPanelRows * 4));
      const __m256i w_abs = _mm256_sign_epi8(w, w);
#pragma GCC unroll 4
      for (int t = 0; t < MT; ++t) {
        int32_t four;
        std::memcpy(&four, xrow[t] + b * kQ8Block + 4 * g, 4);
        const __m256i x_signed = _mm256_sign_epi8(_mm256_set1_epi32(four), w);
        const __m256i pairs = _mm256_maddubs_epi16(w_abs, x_signed);
        isum[t] = _mm256_add_epi32(isum[t], _mm256_madd_epi16(pairs, ones));
      }
    }
    const __m256 dw = _mm256_loadu_ps(panel.scales.data() + b * kPanelRows);
#pragma GCC unroll 4
    for (int t = 0; t < MT; ++t) {
      const __m256 scale = _mm256_mul_ps(dw, _mm256_set1_ps(drow[t][b]));
      acc[t] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(isum[t]), scale, acc[t]);
    }
  }
  if (n_valid == kPanelRows) {
    for (int t = 0; t < MT; ++t) _mm256_storeu_ps(y + t * ldy, acc[t]);
  } else {
    const __m256i mask = simd::lane_mask(n_valid);
    for (int t = 0; t < MT; ++t) _mm256_maskstore_ps(y + t * ldy, mask, acc[t]);
  }
}

}  // namespace

bool matmul_int8(DType type, const void* w, const float* x, float* y, int64_t n_tokens, int64_t rows,
                 int64_t cols, ThreadPool* pool) {
  if ((type != DType::Q8_0 && type != DType::Q4_0) || n_tokens < kMinTokens) return false;
  thread_local PackedActivations activation_storage;
  const PackedActivations& xq = activation_storage;  // a plain reference: see matvec
  pack_activations(x, n_tokens, cols, &activation_storage, pool);
  const auto* base = static_cast<const uint8_t*>(w);
  const size_t stride = row_bytes(type, cols);
  const auto work = [&](int64_t begin, int64_t end) {
    thread_local PackedPanel panel;
    for (int64_t r0 = begin; r0 < end; r0 += kPanelRows) {
      const int64_t n_valid = std::min<int64_t>(kPanelRows, end - r0);
      pack_panel(type, base + r0 * stride, stride, n_valid, cols / kQ8Block, &panel);
      int64_t t = 0;
      for (; t + kTileTokens <= n_tokens; t += kTileTokens)
        int8_tile<kTileTokens>(xq, t, cols, panel, y + t * rows + r0, rows, n_valid);
      float* yt = y + t * rows + r0;
      switch (n_tokens - t) {
        case 3: int8_tile<3>(xq, t, cols, panel, yt, rows, n_valid); break;
        case 2: int8_tile<2>(xq, t, cols, panel, yt, rows, n_valid); break;
        case 1: int8_tile<1>(xq, t, cols, panel, yt, rows, n_valid); break;
        default: break;
      }
    }
  };
  parallel_for(pool, rows, kPanelRows, work);
  return true;
}

#endif

}  // namespace flashmem::detail
