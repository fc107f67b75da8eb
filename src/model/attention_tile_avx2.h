// The tiled decode kernel's block kernels on 8-lane AVX2 vectors (16 ymm registers): the scores of
// a set of query heads for a block of keys, and their Σ p·v over it. attention.cpp's tiled_chunk
// calls them when the build has AVX2 but not the AVX-512 kernels (attention_tile_avx512.h); the
// shared pieces are in attention_tile.h. Internal to src/model.
#pragma once
#include <algorithm>
#include <cstdint>

#include "model/attention_tile.h"

#if defined(__AVX2__) && defined(__FMA__) && defined(__F16C__)
namespace flashmem::attention_tile_avx2 {

using attention_tile::kBlockKeys;

// Query heads of one kv group that the kernel carries through a block together. Every K and V
// vector is converted from the cache type once per such set and never stored: 3 heads × 4 keys
// = 12 score accumulators + 3 query vectors + the converted K vector, and 3 heads × 32 columns =
// 12 output accumulators + 3 broadcast weights + the converted V vector, fill the 16 ymm
// registers.
constexpr int kMaxSet = 3;
// Keys whose scores block_scores computes together (one step; the driver paces its prefetches by
// steps): 4 keys fill the 4 lanes sum_lanes_4 returns.
constexpr int64_t kKeysPerStep = 4;

// Lanes 0-3 = the sums of the 8 lanes of a[0..3].
inline __m128 sum_lanes_4(const __m256 (&a)[4]) {
  const __m256 h = _mm256_hadd_ps(_mm256_hadd_ps(a[0], a[1]), _mm256_hadd_ps(a[2], a[3]));
  return _mm_add_ps(_mm256_castps256_ps128(h), _mm256_extractf128_ps(h, 1));
}

// Scaled scores q_s · k_j · scale of the S heads q [S, hd] for the nb keys whose rows are k_rows
// (an f16 or f32 cache; block_scores_q8 serves q8_0),
// 4 keys per step with all S heads; key j's slice starts `offset` bytes into its row.
// out [S, kAttentionChunkKeys] (head s's scores at out + s · kAttentionChunkKeys); lanes from nb
// up to the next multiple of 4 repeat the last key's score.
template <class Slice, int S, class Step>
void block_scores(const uint8_t* const* k_rows, int64_t nb, size_t offset, const float* q,
                  int64_t hd, float scale, float* out, Step&& step) {
  for (int64_t j0 = 0; j0 < nb; j0 += 4) {
    step();
    const uint8_t* k[4];
    for (int j = 0; j < 4; ++j) k[j] = k_rows[std::min<int64_t>(j0 + j, nb - 1)] + offset;
    // Raw dot products in 12 accumulators, reduced to 4 lanes per head.
    __m256 acc[S][4];
    for (auto& row : acc)
      for (__m256& a : row) a = _mm256_setzero_ps();
    for (int64_t c = 0; c < hd; c += 8) {
      __m256 qc[S];
      for (int s = 0; s < S; ++s) qc[s] = _mm256_loadu_ps(q + s * hd + c);
      for (int j = 0; j < 4; ++j) {
        const __m256 kc = Slice::load8(Slice::values(k[j], c));
        for (int s = 0; s < S; ++s) acc[s][j] = _mm256_fmadd_ps(kc, qc[s], acc[s][j]);
      }
    }
    for (int s = 0; s < S; ++s)
      _mm_storeu_ps(out + s * kAttentionChunkKeys + j0, _mm_mul_ps(sum_lanes_4(acc[s]), _mm_set1_ps(scale)));
  }
}

// Lanes 0-3 = the sums of the 8 int32 lanes of a[0..3] (exact: integer adds).
inline __m128i sum_lanes_4_i32(const __m256i (&a)[4]) {
  const __m256i h = _mm256_hadd_epi32(_mm256_hadd_epi32(a[0], a[1]), _mm256_hadd_epi32(a[2], a[3]));
  return _mm_add_epi32(_mm256_castsi256_si128(h), _mm256_extracti128_si256(h, 1));
}

// 8 int32 lanes summing to Σ_i k_i q_i over one block's 32 codes. maddubs multiplies unsigned by
// signed bytes, so |k| meets q carrying k's sign; |k| <= 128 and |q| <= 127 (quantize_row's codes)
// keep each pair of products within int16 (<= 32512), and madd adds the pairs into int32.
inline __m256i block_dot_i8(__m256i k, __m256i k_abs, __m256i q) {
  return _mm256_madd_epi16(_mm256_maddubs_epi16(k_abs, _mm256_sign_epi8(q, k)), _mm256_set1_epi16(1));
}

// block_scores for a q8_0 cache: the S heads' query in q8_0, q [S, n_blocks] (quantized_query)
// with its scales as f32 (block b of head s at q_d[b · q_d_stride + s]),
// meets the keys' codes in integer dot products; per block the 4 keys' int32 sums become f32
// (exactly) and join the running scores with one fused multiply-add by d_k · d_q: dot_q8_0's
// arithmetic, bit for bit.
template <int S, class Step>
void block_scores_q8(const uint8_t* const* k_rows, int64_t nb, size_t offset, const BlockQ8_0* q,
                     const float* q_d, int64_t q_d_stride, int64_t n_blocks, float scale, float* out,
                     Step&& step) {
  for (int64_t j0 = 0; j0 < nb; j0 += 4) {
    step();
    const BlockQ8_0* k[4];
    for (int j = 0; j < 4; ++j)
      k[j] = reinterpret_cast<const BlockQ8_0*>(k_rows[std::min<int64_t>(j0 + j, nb - 1)] + offset);
    __m128 sc[S];
    for (__m128& x : sc) x = _mm_setzero_ps();
    for (int64_t b = 0; b < n_blocks; ++b) {
      __m256i dot[S][4];
      for (int j = 0; j < 4; ++j) {
        const __m256i kc = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(k[j][b].qs));
        const __m256i k_abs = _mm256_sign_epi8(kc, kc);
        for (int s = 0; s < S; ++s) {
          const __m256i qc = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(q[s * n_blocks + b].qs));
          dot[s][j] = block_dot_i8(kc, k_abs, qc);
        }
      }
      const __m128 d_k = _mm_cvtph_ps(_mm_setr_epi16(
          static_cast<int16_t>(k[0][b].d), static_cast<int16_t>(k[1][b].d), static_cast<int16_t>(k[2][b].d),
          static_cast<int16_t>(k[3][b].d), 0, 0, 0, 0));
      for (int s = 0; s < S; ++s) {
        const __m128 d = _mm_mul_ps(d_k, _mm_set1_ps(q_d[b * q_d_stride + s]));
        sc[s] = _mm_fmadd_ps(_mm_cvtepi32_ps(sum_lanes_4_i32(dot[s])), d, sc[s]);
      }
    }
    for (int s = 0; s < S; ++s)
      _mm_storeu_ps(out + s * kAttentionChunkKeys + j0, _mm_mul_ps(sc[s], _mm_set1_ps(scale)));
  }
}

// acc_s[c, c + 8W) += Σ_{j < nb} w_s[j] v_j[c, c + 8W) for the S heads (acc_s at acc + s ·
// acc_stride, w_s at w + s · w_stride: the weights p_sj, times v_j's scale for a q8_0 cache), the
// S·W accumulators in registers across the block, each V vector converted once for the S heads.
// Per element the FMAs run in j order.
template <class Slice, int S, int W>
void block_accumulate_cols(const uint8_t* const* v_rows, int64_t nb, size_t offset, const float* w,
                           int64_t w_stride, int64_t c, float* acc, int64_t acc_stride) {
  __m256 a[S][W];
#pragma GCC unroll 4
  for (int s = 0; s < S; ++s)
#pragma GCC unroll 4
    for (int i = 0; i < W; ++i) a[s][i] = _mm256_loadu_ps(acc + s * acc_stride + c + 8 * i);
  for (int64_t j = 0; j < nb; ++j) {
    const uint8_t* vc0 = Slice::values(v_rows[j] + offset, c);
    __m256 wj[S];
#pragma GCC unroll 4
    for (int s = 0; s < S; ++s) wj[s] = _mm256_broadcast_ss(w + s * w_stride + j);
#pragma GCC unroll 4
    for (int i = 0; i < W; ++i) {
      const __m256 vc = Slice::load8(vc0 + 8 * i * Slice::kValueBytes);
#pragma GCC unroll 4
      for (int s = 0; s < S; ++s) a[s][i] = _mm256_fmadd_ps(wj[s], vc, a[s][i]);
    }
  }
#pragma GCC unroll 4
  for (int s = 0; s < S; ++s)
#pragma GCC unroll 4
    for (int i = 0; i < W; ++i) _mm256_storeu_ps(acc + s * acc_stride + c + 8 * i, a[s][i]);
}

// The first vd values of each V slice (vd a multiple of 8): 32 columns per step (one q8_0
// block), then 8.
template <class Slice, int S>
void block_accumulate(const uint8_t* const* v_rows, int64_t nb, size_t offset, const float* p,
                      int64_t vd, float* acc, int64_t acc_stride) {
  constexpr int W = 4;  // S·W accumulators + S weights + the V vector within 16 registers
  attention_tile::for_each_column_step<Slice, S, 8 * W>(
      v_rows, nb, offset, p, vd, [&](int64_t c, int64_t n, const float* w, int64_t w_stride) {
        if (n == 8 * W) {
          block_accumulate_cols<Slice, S, W>(v_rows, nb, offset, w, w_stride, c, acc, acc_stride);
          return;
        }
        for (int64_t c8 = c; c8 < c + n; c8 += 8)
          block_accumulate_cols<Slice, S, 1>(v_rows, nb, offset, w, w_stride, c8, acc, acc_stride);
      });
}

}  // namespace flashmem::attention_tile_avx2
#endif
