// matmul: Y[n_tokens, rows] = X[n_tokens, cols] · W[rows, cols]^T for prefill. Each thread takes
// a contiguous range of W rows; per panel of kPanelRows rows it converts the weights once to f32
// in k-major order ([cols, kPanelRows]) and reuses that panel for every token, so the weight type
// only matters to the packing step. Q8_0/Q4_0 weights go to the integer GEMM (matmul_int8.cpp
// with AVX-512 VNNI, matmul_int8_avx2.cpp with AVX2) when the build has one, and the K-quants
// to matvec_batch's integer tile kernel (kquant_kernels.cpp) when the build has AVX2; other
// quantized types (and those without such a build) come here, with the activations first rounded
// through the format matvec quantizes them to (Q8_0 or Q8_K), so both paths see the same inputs.
#include <algorithm>
#include <vector>

#include "tensor/block_quants.h"
#include "tensor/kernels.h"
#include "tensor/kernels_internal.h"
#include "tensor/kquant_kernels.h"

#include "tensor/simd.h"

namespace flashmem {
namespace {

// Below these token counts, matvec per token is faster than packing f32 panels (measured
// crossover on 2048 × 768, one thread): packing costs about as much as streaming a Q8_0/Q4_0
// matrix ~14 times, but an f32/f16 matrix only ~4 times. (Builds with the int8 GEMM use it for
// quantized weights from its own, lower threshold.)
constexpr int64_t kMinGemmTokensQuantized = 16;
constexpr int64_t kMinGemmTokensFloat = 4;

#if defined(__AVX512F__)
// Weight rows per packed panel: 4 zmm vectors per k step. With kTileTokens = 6 the microkernel
// holds 6 × 4 = 24 accumulators + 4 weight vectors + 1 broadcast in the 32 zmm registers, and
// does 24 FMAs per 4 vector loads + 6 broadcasts, so it is FMA-bound rather than load-bound.
constexpr int kPanelVectors = 4;
constexpr int kLanes = 16;
#elif defined(__AVX2__) && defined(__FMA__)
// 16 ymm registers: 6 × 2 = 12 accumulators + 2 weight vectors + 1 broadcast.
constexpr int kPanelVectors = 2;
constexpr int kLanes = 8;
#else
// Scalar: 16 rows keeps a panel [cols, 16] within L1/L2 for any cols we use.
constexpr int kPanelVectors = 1;
constexpr int kLanes = 16;
#endif
constexpr int kPanelRows = kPanelVectors * kLanes;
constexpr int kTileTokens = 6;

// Depth (columns) per pass over a panel: 256 × 64 × 4 B = 64 KiB of panel is reused by all token
// tiles from L2 while the 6 token rows touched (6 KiB) stay in L1. Measured on the 125M shapes,
// 128 to 2048 are within 3% of each other (the panel fits L2 either way); 256 keeps that margin
// for wider models.
constexpr int64_t kDepthBlock = 256;

// Rounds each activation row through the format `type`'s dot product quantizes activations to
// (Q8_0 or Q8_K: quantize + dequantize) into xq [n_tokens, cols].
void round_activations(DType type, const float* x, float* xq, int64_t n_tokens, int64_t cols, ThreadPool* pool) {
  const auto work = [&](int64_t begin, int64_t end) {
    std::vector<BlockQ8_0> blocks(static_cast<size_t>(cols / kQ8Block));  // [cols / 32]
    detail::ActivationQ8K k_blocks;
    for (int64_t t = begin; t < end; ++t) {
      if (detail::activation_format(type) == detail::ActivationFormat::kQ8_K) {
        detail::quantize_activation_q8k(x + t * cols, cols, &k_blocks);
        for (int64_t i = 0; i < cols; ++i) xq[t * cols + i] = k_blocks.d[i / kQKBlock] * k_blocks.qs[i];
      } else {
        quantize_row(DType::Q8_0, x + t * cols, blocks.data(), cols);
        dequantize_row(DType::Q8_0, blocks.data(), xq + t * cols, cols);
      }
    }
  };
  parallel_for(pool, n_tokens, 1, work);
}

// Rows converted and transposed together when packing: one 16 × 16 register transpose.
constexpr int kPackRows = 16;

#if defined(__AVX512F__)
// In-register transpose of a 16 × 16 f32 tile: v[i] holds row i on entry, column i on exit.
inline void transpose_16x16(__m512 (&v)[16]) {
  __m512 t[16];
  for (int i = 0; i < 8; ++i) {
    t[2 * i] = _mm512_unpacklo_ps(v[2 * i], v[2 * i + 1]);
    t[2 * i + 1] = _mm512_unpackhi_ps(v[2 * i], v[2 * i + 1]);
  }
  // u[4g + j], 128-bit lane L: rows 4g..4g+3 of column 4L + j.
  __m512 u[16];
  for (int g = 0; g < 4; ++g) {
    u[4 * g + 0] = _mm512_shuffle_ps(t[4 * g], t[4 * g + 2], 0x44);
    u[4 * g + 1] = _mm512_shuffle_ps(t[4 * g], t[4 * g + 2], 0xee);
    u[4 * g + 2] = _mm512_shuffle_ps(t[4 * g + 1], t[4 * g + 3], 0x44);
    u[4 * g + 3] = _mm512_shuffle_ps(t[4 * g + 1], t[4 * g + 3], 0xee);
  }
  for (int j = 0; j < 4; ++j) {
    const __m512 s0 = _mm512_shuffle_f32x4(u[j], u[4 + j], 0x44);
    const __m512 s1 = _mm512_shuffle_f32x4(u[j], u[4 + j], 0xee);
    const __m512 s2 = _mm512_shuffle_f32x4(u[8 + j], u[12 + j], 0x44);
    const __m512 s3 = _mm512_shuffle_f32x4(u[8 + j], u[12 + j], 0xee);
    v[j] = _mm512_shuffle_f32x4(s0, s2, 0x88);
    v[4 + j] = _mm512_shuffle_f32x4(s0, s2, 0xdd);
    v[8 + j] = _mm512_shuffle_f32x4(s1, s3, 0x88);
    v[12 + j] = _mm512_shuffle_f32x4(s1, s3, 0xdd);
  }
}
#endif

// Converts rows [0, n_rows) of W (n_rows <= kPanelRows) into panel [cols, kPanelRows], zero
// padding the missing rows so the microkernel never branches on them. Rows are dequantized
// kPackRows at a time and written transposed, 16 columns per register transpose.
void pack_panel(DType type, const uint8_t* w, size_t stride, int64_t n_rows, int64_t cols,
                float* rows_buffer /* [kPackRows, cols] */, float* panel /* [cols, kPanelRows] */) {
  if (n_rows < kPanelRows) std::fill(panel, panel + cols * kPanelRows, 0.0f);
  for (int64_t r0 = 0; r0 < n_rows; r0 += kPackRows) {
    const int64_t n = std::min<int64_t>(kPackRows, n_rows - r0);
    for (int64_t r = 0; r < n; ++r) dequantize_row(type, w + (r0 + r) * stride, rows_buffer + r * cols, cols);
    int64_t k = 0;
#if defined(__AVX512F__)
    if (n == kPackRows && kPanelRows % kPackRows == 0) {
      for (; k + 16 <= cols; k += 16) {
        __m512 v[16];
        for (int r = 0; r < 16; ++r) v[r] = _mm512_loadu_ps(rows_buffer + r * cols + k);
        transpose_16x16(v);
        for (int i = 0; i < 16; ++i) _mm512_store_ps(panel + (k + i) * kPanelRows + r0, v[i]);
      }
    }
#elif defined(__AVX2__) && defined(__FMA__) && defined(__F16C__)
    if (n == kPackRows && kPanelRows % kPackRows == 0) {
      for (; k + 8 <= cols; k += 8) {
        for (int h = 0; h < kPackRows; h += 8) {  // two 8 × 8 tiles per 16 rows
          __m256 v[8];
          for (int r = 0; r < 8; ++r) v[r] = _mm256_loadu_ps(rows_buffer + (h + r) * cols + k);
          simd::transpose_8x8(v);
          for (int i = 0; i < 8; ++i) _mm256_store_ps(panel + (k + i) * kPanelRows + r0 + h, v[i]);
        }
      }
    }
#endif
    for (; k < cols; ++k)
      for (int64_t r = 0; r < n; ++r) panel[k * kPanelRows + r0 + r] = rows_buffer[r * cols + k];
  }
}

#if defined(__AVX512F__)

// y[MT, 64] (+)= x[MT, depth] · panel[depth, 64]; only the first n_valid columns of y are written.
template <int MT>
void gemm_tile(const float* x, int64_t ldx, const float* panel, int64_t depth, float* y, int64_t ldy,
               int64_t n_valid, bool accumulate) {
  __m512 acc[MT][4];
#pragma GCC unroll 8
  for (int t = 0; t < MT; ++t)
#pragma GCC unroll 4
    for (int j = 0; j < 4; ++j) acc[t][j] = _mm512_setzero_ps();
  for (int64_t k = 0; k < depth; ++k) {
    const float* p = panel + k * kPanelRows;
    const __m512 w0 = _mm512_load_ps(p), w1 = _mm512_load_ps(p + 16);
    const __m512 w2 = _mm512_load_ps(p + 32), w3 = _mm512_load_ps(p + 48);
#pragma GCC unroll 8
    for (int t = 0; t < MT; ++t) {
      const __m512 xb = _mm512_set1_ps(x[t * ldx + k]);
      acc[t][0] = _mm512_fmadd_ps(xb, w0, acc[t][0]);
      acc[t][1] = _mm512_fmadd_ps(xb, w1, acc[t][1]);
      acc[t][2] = _mm512_fmadd_ps(xb, w2, acc[t][2]);
      acc[t][3] = _mm512_fmadd_ps(xb, w3, acc[t][3]);
    }
  }
  __mmask16 row_mask[4];
  for (int j = 0; j < 4; ++j) {
    const int64_t valid = std::clamp<int64_t>(n_valid - 16 * j, 0, 16);
    row_mask[j] = static_cast<__mmask16>((1u << valid) - 1u);
  }
#pragma GCC unroll 8
  for (int t = 0; t < MT; ++t) {
#pragma GCC unroll 4
    for (int j = 0; j < 4; ++j) {
      float* out = y + t * ldy + j * 16;
      __m512 v = acc[t][j];
      if (accumulate) v = _mm512_add_ps(v, _mm512_maskz_loadu_ps(row_mask[j], out));
      _mm512_mask_storeu_ps(out, row_mask[j], v);
    }
  }
}

#elif defined(__AVX2__) && defined(__FMA__)

// y[MT, 16] (+)= x[MT, depth] · panel[depth, 16]; only the first n_valid columns of y are written.
template <int MT>
void gemm_tile(const float* x, int64_t ldx, const float* panel, int64_t depth, float* y, int64_t ldy,
               int64_t n_valid, bool accumulate) {
  __m256 acc[MT][2];
#pragma GCC unroll 8
  for (int t = 0; t < MT; ++t) acc[t][0] = acc[t][1] = _mm256_setzero_ps();
  for (int64_t k = 0; k < depth; ++k) {
    const float* p = panel + k * kPanelRows;
    const __m256 w0 = _mm256_load_ps(p), w1 = _mm256_load_ps(p + 8);
#pragma GCC unroll 8
    for (int t = 0; t < MT; ++t) {
      const __m256 xb = _mm256_broadcast_ss(x + t * ldx + k);
      acc[t][0] = _mm256_fmadd_ps(xb, w0, acc[t][0]);
      acc[t][1] = _mm256_fmadd_ps(xb, w1, acc[t][1]);
    }
  }
  for (int t = 0; t < MT; ++t) {
    alignas(32) float tile[kPanelRows];  // [16] one token's outputs
    _mm256_store_ps(tile, acc[t][0]);
    _mm256_store_ps(tile + 8, acc[t][1]);
    float* out = y + t * ldy;
    for (int64_t j = 0; j < n_valid; ++j) out[j] = accumulate ? out[j] + tile[j] : tile[j];
  }
}

#else

template <int MT>
void gemm_tile(const float* x, int64_t ldx, const float* panel, int64_t depth, float* y, int64_t ldy,
               int64_t n_valid, bool accumulate) {
  for (int t = 0; t < MT; ++t) {
    for (int64_t r = 0; r < n_valid; ++r) {
      float sum = accumulate ? y[t * ldy + r] : 0.0f;
      for (int64_t k = 0; k < depth; ++k) sum += x[t * ldx + k] * panel[k * kPanelRows + r];
      y[t * ldy + r] = sum;
    }
  }
}

#endif

// All token tiles against one depth block of a packed panel.
void gemm_tiles(const float* x, int64_t n_tokens, int64_t cols, const float* panel, int64_t k0,
                int64_t depth, float* y, int64_t rows, int64_t n_valid) {
  const float* p = panel + k0 * kPanelRows;
  const bool accumulate = k0 > 0;
  int64_t t = 0;
  for (; t + kTileTokens <= n_tokens; t += kTileTokens)
    gemm_tile<kTileTokens>(x + t * cols + k0, cols, p, depth, y + t * rows, rows, n_valid, accumulate);
  const float* xt = x + t * cols + k0;
  float* yt = y + t * rows;
  switch (n_tokens - t) {
    case 5: gemm_tile<5>(xt, cols, p, depth, yt, rows, n_valid, accumulate); break;
    case 4: gemm_tile<4>(xt, cols, p, depth, yt, rows, n_valid, accumulate); break;
    case 3: gemm_tile<3>(xt, cols, p, depth, yt, rows, n_valid, accumulate); break;
    case 2: gemm_tile<2>(xt, cols, p, depth, yt, rows, n_valid, accumulate); break;
    case 1: gemm_tile<1>(xt, cols, p, depth, yt, rows, n_valid, accumulate); break;
    default: break;
  }
}

// Aligned so the microkernel's panel loads are aligned 64-byte vectors.
struct alignas(64) PanelChunk {
  float values[16];
};

}  // namespace

void matmul(DType type, const void* w, const float* x, float* y, int64_t n_tokens, int64_t rows,
            int64_t cols, ThreadPool* pool) {
  const bool quantized = detail::activation_format(type) != detail::ActivationFormat::kFloat;
  if (quantized && detail::matmul_int8(type, w, x, y, n_tokens, rows, cols, pool)) return;
#if defined(FLASHMEM_KQUANT_SIMD)
  // K-quants: repacked panels with dpbusd where the build has VNNI, else matvec_batch's integer
  // tile kernel (each super-block unpacked once per 8 tokens); both give every token matvec's bits.
  if (detail::activation_format(type) == detail::ActivationFormat::kQ8_K) {
    if (detail::matmul_kquant_int8(type, w, x, y, n_tokens, rows, cols, pool)) return;
    return matvec_batch(type, w, x, y, n_tokens, rows, cols, pool);
  }
#endif
  // Q4_1/Q5_1 take their mins through llama.cpp's fp16 activation block sums (block_quants.h); a
  // GEMM on dequantized weights sums the activations exactly instead, and since the min term
  // largely cancels the code term, that 2^-11 difference moved logits by 2e-2 against llama.cpp.
  // They stay on matvec per token.
  const bool min_through_block_sums = type == DType::Q4_1 || type == DType::Q5_1;
  if (min_through_block_sums || n_tokens < (quantized ? kMinGemmTokensQuantized : kMinGemmTokensFloat)) {
    for (int64_t t = 0; t < n_tokens; ++t) matvec(type, w, x + t * cols, y + t * rows, rows, cols, pool);
    return;
  }
  thread_local std::vector<float> x_rounded;  // [n_tokens, cols]
  const float* xin = x;
  if (quantized) {
    x_rounded.resize(static_cast<size_t>(n_tokens * cols));
    round_activations(type, x, x_rounded.data(), n_tokens, cols, pool);
    xin = x_rounded.data();
  }
  const auto* base = static_cast<const uint8_t*>(w);
  const size_t stride = row_bytes(type, cols);
  const auto work = [&](int64_t begin, int64_t end) {
    thread_local std::vector<PanelChunk> panel_storage;  // [cols, kPanelRows] as 64-byte chunks
    thread_local std::vector<float> rows_buffer;         // [kPackRows, cols]
    panel_storage.resize(static_cast<size_t>((cols * kPanelRows + 15) / 16));
    rows_buffer.resize(static_cast<size_t>(kPackRows * cols));
    float* panel = panel_storage.data()->values;
    for (int64_t r0 = begin; r0 < end; r0 += kPanelRows) {
      const int64_t n_valid = std::min<int64_t>(kPanelRows, end - r0);
      pack_panel(type, base + r0 * stride, stride, n_valid, cols, rows_buffer.data(), panel);
      for (int64_t k0 = 0; k0 < cols; k0 += kDepthBlock) {
        const int64_t depth = std::min(kDepthBlock, cols - k0);
        gemm_tiles(xin, n_tokens, cols, panel, k0, depth, y + r0, rows, n_valid);
      }
    }
  };
  parallel_for(pool, rows, kPanelRows, work);
}

}  // namespace flashmem
