// The tiled decode kernel's block kernels on 16-lane AVX-512 vectors (32 zmm registers, masks,
// VNNI): the scores of a set of query heads for a block of keys, and their Σ p·v over it, with
// the interface of attention_tile_avx2.h. attention.cpp's tiled_chunk calls them when
// FLASHMEM_ATTENTION_AVX512 is defined (attention_tile.h). Internal to src/model.
#pragma once
#include <algorithm>
#include <cstdint>
#include <utility>

#include "model/attention_tile.h"

#if defined(FLASHMEM_ATTENTION_AVX512)
namespace flashmem::attention_tile_avx512 {

using attention_tile::kBlockKeys;

// Query heads of one kv group that the kernel carries through a block together: 4 heads × 4 keys
// = 16 score accumulators, which one transposing reduction (sum_lanes_16) turns into one vector
// of 16 scores; with 4 query vectors and the converted K vector that is 21 of the 32 registers.
// In pass 2, 4 heads × 64 columns = 16 accumulators + 4 broadcast weights + the V vector. (More
// keys per step would spill, or pay a second reduction.)
constexpr int kMaxSet = 4;
// Keys per step() call, by which the driver paces its prefetches.
constexpr int64_t kKeysPerStep = 4;
// Keys whose scores block_scores computes in one step for a set of S heads: as many as fill the
// 16 accumulators of one reduction (16, 8 or 4 for 1, 2 or 4 heads; 4 for 3 heads, 12 of 16).
// A power of two, so steps tile the 32-key block. Against 4 keys for every set: attend_token over
// 1024 cache-resident f16 keys (4 kv heads, hd 64) 34.8-36.0 -> 31.1-32.9 µs for group 2, no
// change beyond noise for group 1 (~30 µs; its V pass dominates).
template <int S>
constexpr int kScoreKeys = S == 3 ? 4 : 16 / S;

// Lanes 0 .. n - 1 set (all 16 from n = 16 on): the tail of a slice that is not a whole number of
// vectors.
inline __mmask16 lanes_from(int64_t n) {
  return static_cast<__mmask16>(n >= 16 ? 0xFFFF : (1u << n) - 1u);
}

// Lane additions as f32 or as int32; the reductions below only move bits between them.
struct AddF32 {
  __m512 operator()(__m512 a, __m512 b) const { return _mm512_add_ps(a, b); }
};
struct AddI32 {
  __m512 operator()(__m512 a, __m512 b) const {
    return _mm512_castsi512_ps(_mm512_add_epi32(_mm512_castps_si512(a), _mm512_castps_si512(b)));
  }
};

// Each 128-bit chunk c of x[i] holds 4 partial sums; lane 4c + i of the result = their sum.
// unpack and shuffle move lanes within chunks only: two levels of pairwise adds.
template <class Add>
inline __m512 sum_chunk_lanes(const __m512 (&x)[4], Add add) {
  const __m512 y0 = add(_mm512_unpacklo_ps(x[0], x[1]), _mm512_unpackhi_ps(x[0], x[1]));
  const __m512 y1 = add(_mm512_unpacklo_ps(x[2], x[3]), _mm512_unpackhi_ps(x[2], x[3]));
  return add(_mm512_shuffle_ps(y0, y1, _MM_SHUFFLE(1, 0, 1, 0)), _mm512_shuffle_ps(y0, y1, _MM_SHUFFLE(3, 2, 3, 2)));
}

// Lane i = the sum of the 16 lanes of v[i], every v[i] summed in the same order (so a key's score
// does not depend on its place in a step): chunks 0+2 and 1+3 of v[a] beside v[a + 4]'s, then
// those pairs' halves added beside v[a + 8], v[a + 12]'s, then within chunks. 45 operations for
// the 16 sums, where a reduction of each vector on its own takes 8 (128 in all).
inline __m512 sum_lanes_16(const __m512 (&v)[16]) {
  __m512 w[8];  // a = i (i < 4) or i + 4: chunks [v_a 0+2, v_a 1+3, v_a+4 0+2, v_a+4 1+3]
  for (int i = 0; i < 8; ++i) {
    const int a = i < 4 ? i : i + 4;
    w[i] = _mm512_add_ps(_mm512_shuffle_f32x4(v[a], v[a + 4], 0x44), _mm512_shuffle_f32x4(v[a], v[a + 4], 0xEE));
  }
  __m512 x[4];  // chunk c of x[i]: the 4 partial sums of v[i + 4c]
  for (int i = 0; i < 4; ++i)
    x[i] = _mm512_add_ps(_mm512_shuffle_f32x4(w[i], w[i + 4], 0x88), _mm512_shuffle_f32x4(w[i], w[i + 4], 0xDD));
  return sum_chunk_lanes(x, AddF32{});
}

// out + s · kAttentionChunkKeys [0, J) = lanes Js .. Js + J - 1 of r, for the S heads s (S·J <= 16).
template <int S, int J>
inline void store_head_lanes(__m512 r, float* out) {
  static_assert(J == 4 || (J == 8 && S <= 2) || (J == 16 && S == 1));
  if constexpr (J == 16) {
    _mm512_storeu_ps(out, r);
  } else if constexpr (J == 8) {
    _mm256_storeu_ps(out, _mm512_castps512_ps256(r));
    if constexpr (S == 2)
      _mm256_storeu_ps(out + kAttentionChunkKeys, _mm256_castpd_ps(_mm512_extractf64x4_pd(_mm512_castps_pd(r), 1)));
  } else {
    [&]<int... s>(std::integer_sequence<int, s...>) {
      (_mm_storeu_ps(out + s * kAttentionChunkKeys, _mm512_extractf32x4_ps(r, s)), ...);
    }(std::make_integer_sequence<int, S>{});
  }
}

// acc[Js + j] += q_s[c, c + 16) · k_j[c, c + 16) lane by lane for the S heads and J keys; kTail:
// only the lanes of `tail` (the slice's last values), the others read as 0.
template <class Slice, int S, int J, bool kTail>
inline void score_columns(const uint8_t* const (&k)[J], const float* q, int64_t hd, int64_t c, __mmask16 tail,
                          __m512 (&acc)[16]) {
  __m512 qc[S];
  for (int s = 0; s < S; ++s)
    qc[s] = kTail ? _mm512_maskz_loadu_ps(tail, q + s * hd + c) : _mm512_loadu_ps(q + s * hd + c);
  for (int j = 0; j < J; ++j) {
    const uint8_t* p = Slice::values(k[j], c);
    const __m512 kc = kTail ? Slice::load16(p, tail) : Slice::load16(p);
    for (int s = 0; s < S; ++s) acc[J * s + j] = _mm512_fmadd_ps(kc, qc[s], acc[J * s + j]);
  }
}

// Scaled scores q_s · k_j · scale of the S heads q [S, hd] for the nb keys whose rows are k_rows
// (an f16 or f32 cache; block_scores_q8 serves q8_0), kScoreKeys<S> keys per step with all S
// heads; key j's slice starts `offset` bytes into its row. out [S, kAttentionChunkKeys] (head s's
// scores at out + s · kAttentionChunkKeys); lanes from nb up to the next multiple of
// kScoreKeys<S> (<= kBlockKeys) repeat the last key's score.
template <class Slice, int S, class Step>
void block_scores(const uint8_t* const* k_rows, int64_t nb, size_t offset, const float* q, int64_t hd,
                  float scale, float* out, Step&& step) {
  const int64_t whole = hd / 16 * 16;  // columns in whole vectors; hd - whole (8) in a masked one
  const __mmask16 tail = lanes_from(hd - whole);
  constexpr int J = kScoreKeys<S>;
  for (int64_t j0 = 0; j0 < nb; j0 += J) {
    for (int i = 0; i < J / kKeysPerStep; ++i) step();
    const uint8_t* k[J];
    for (int j = 0; j < J; ++j) k[j] = k_rows[std::min<int64_t>(j0 + j, nb - 1)] + offset;
    __m512 acc[16];  // [head s, key j] at Js + j; lanes from S·J on stay 0
    for (__m512& a : acc) a = _mm512_setzero_ps();
    for (int64_t c = 0; c < whole; c += 16) score_columns<Slice, S, J, false>(k, q, hd, c, tail, acc);
    if (whole < hd) score_columns<Slice, S, J, true>(k, q, hd, whole, tail, acc);
    store_head_lanes<S, J>(_mm512_mul_ps(sum_lanes_16(acc), _mm512_set1_ps(scale)), out + j0);
  }
}

// block_scores for a q8_0 cache: the S heads' query in q8_0, q [S, n_blocks] (quantized_query)
// with its scales as f32 (block b of head s at q_d[b · q_d_stride + s]), meets the keys' codes
// in integer dot products; per block the 4 keys' int32 sums become f32 (exactly) and join the
// running scores with one fused multiply-add by d_k · d_q: dot_q8_0's arithmetic, bit for bit.
// dpbusd multiplies unsigned by signed bytes, so it takes q + 128 (the code's bits with the top
// one flipped) against k and starts from -128 Σk: every lane's sum is exact in int32
// (|products| <= 255 · 128), as is the block's.
template <int S, class Step>
void block_scores_q8(const uint8_t* const* k_rows, int64_t nb, size_t offset, const BlockQ8_0* q,
                     const float* q_d, int64_t q_d_stride, int64_t n_blocks, float scale, float* out,
                     Step&& step) {
  const __m512i bias = _mm512_set1_epi8(static_cast<char>(0x80));  // 128 unsigned, or the sign bit
  // Lane 4j + s of the scores <- key j (d_k) and head s (d_q); then back to head-major 4s + j.
  const __m512i key_of_lane = _mm512_setr_epi32(0, 0, 0, 0, 1, 1, 1, 1, 2, 2, 2, 2, 3, 3, 3, 3);
  const __m512i head_major = _mm512_setr_epi32(0, 4, 8, 12, 1, 5, 9, 13, 2, 6, 10, 14, 3, 7, 11, 15);
  const __mmask8 heads = static_cast<__mmask8>((1u << S) - 1u);
  for (int64_t j0 = 0; j0 < nb; j0 += kKeysPerStep) {
    step();
    const BlockQ8_0* k[4];
    for (int j = 0; j < 4; ++j)
      k[j] = reinterpret_cast<const BlockQ8_0*>(k_rows[std::min<int64_t>(j0 + j, nb - 1)] + offset);
    __m512 sc = _mm512_setzero_ps();  // lane 4j + s: head s's score of key j so far
    for (int64_t b = 0; b < n_blocks; ++b) {
      __m512i pair[2], start[2];  // keys 2i and 2i + 1's codes in the two halves; -128 Σk per lane
      for (int i = 0; i < 2; ++i) {
        pair[i] = _mm512_inserti64x4(
            _mm512_castsi256_si512(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(k[2 * i][b].qs))),
            _mm256_loadu_si256(reinterpret_cast<const __m256i*>(k[2 * i + 1][b].qs)), 1);
        start[i] = _mm512_sub_epi32(_mm512_setzero_si512(),
                                    _mm512_dpbusd_epi32(_mm512_setzero_si512(), bias, pair[i]));
      }
      __m512 x[4];  // chunk j of x[s]: head s's 4 partial sums of key j
      for (int s = 0; s < 4; ++s) {
        if (s >= S) {
          x[s] = _mm512_setzero_ps();
          continue;
        }
        const __m512i qs = _mm512_xor_si512(
            _mm512_broadcast_i64x4(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(q[s * n_blocks + b].qs))),
            bias);
        const __m512 lo = _mm512_castsi512_ps(_mm512_dpbusd_epi32(start[0], qs, pair[0]));
        const __m512 hi = _mm512_castsi512_ps(_mm512_dpbusd_epi32(start[1], qs, pair[1]));
        x[s] = AddI32{}(_mm512_shuffle_f32x4(lo, hi, 0x88), _mm512_shuffle_f32x4(lo, hi, 0xDD));
      }
      const __m512i dot = _mm512_castps_si512(sum_chunk_lanes(x, AddI32{}));
      const __m128 d_k4 = _mm_cvtph_ps(_mm_setr_epi16(
          static_cast<int16_t>(k[0][b].d), static_cast<int16_t>(k[1][b].d), static_cast<int16_t>(k[2][b].d),
          static_cast<int16_t>(k[3][b].d), 0, 0, 0, 0));
      const __m512 d_k = _mm512_permutexvar_ps(key_of_lane, _mm512_castps128_ps512(d_k4));
      const __m512 d_q = _mm512_broadcast_f32x4(_mm_maskz_loadu_ps(heads, q_d + b * q_d_stride));
      sc = _mm512_fmadd_ps(_mm512_cvtepi32_ps(dot), _mm512_mul_ps(d_k, d_q), sc);
    }
    store_head_lanes<S, 4>(_mm512_mul_ps(_mm512_permutexvar_ps(head_major, sc), _mm512_set1_ps(scale)), out + j0);
  }
}

// acc_s[c, c + 16W) += Σ_{j < nb} w_s[j] v_j[c, c + 16W) for the S heads (acc_s at acc + s ·
// acc_stride, w_s at w + s · w_stride: the weights p_sj, times v_j's scale for a q8_0 cache), the
// S·W accumulators in registers across the block, each V vector converted once for the S heads.
// kTail: the last of the W vectors holds only the lanes of `tail`. Per element the FMAs run in j
// order.
template <class Slice, int S, int W, bool kTail>
void block_accumulate_cols(const uint8_t* const* v_rows, int64_t nb, size_t offset, const float* w,
                           int64_t w_stride, int64_t c, float* acc, int64_t acc_stride, __mmask16 tail) {
  auto masked = [](int i) { return kTail && i == W - 1; };
  __m512 a[S][W];
  for (int s = 0; s < S; ++s)
    for (int i = 0; i < W; ++i) {
      const float* at = acc + s * acc_stride + c + 16 * i;
      a[s][i] = masked(i) ? _mm512_maskz_loadu_ps(tail, at) : _mm512_loadu_ps(at);
    }
  for (int64_t j = 0; j < nb; ++j) {
    const uint8_t* vc0 = Slice::values(v_rows[j] + offset, c);
    __m512 wj[S];
    for (int s = 0; s < S; ++s) wj[s] = _mm512_set1_ps(w[s * w_stride + j]);
    for (int i = 0; i < W; ++i) {
      const uint8_t* p = vc0 + 16 * i * Slice::kValueBytes;
      const __m512 vc = masked(i) ? Slice::load16(p, tail) : Slice::load16(p);
      for (int s = 0; s < S; ++s) a[s][i] = _mm512_fmadd_ps(wj[s], vc, a[s][i]);
    }
  }
  for (int s = 0; s < S; ++s)
    for (int i = 0; i < W; ++i) {
      float* at = acc + s * acc_stride + c + 16 * i;
      if (masked(i)) {
        _mm512_mask_storeu_ps(at, tail, a[s][i]);
      } else {
        _mm512_storeu_ps(at, a[s][i]);
      }
    }
}

// The first vd values of each V slice (vd a multiple of 8): 64 columns per step (W = 4, see
// kMaxSet), for q8_0 32 (one block, whose scale joins the weights first); a short last step in
// single vectors, the last one masked when it holds 8 values.
template <class Slice, int S>
void block_accumulate(const uint8_t* const* v_rows, int64_t nb, size_t offset, const float* p, int64_t vd,
                      float* acc, int64_t acc_stride) {
  constexpr int64_t kStep = Slice::kScaled ? kQ8Block : 64;
  attention_tile::for_each_column_step<Slice, S, kStep>(
      v_rows, nb, offset, p, vd, [&](int64_t c, int64_t n, const float* w, int64_t w_stride) {
        if (n == kStep) {
          block_accumulate_cols<Slice, S, kStep / 16, false>(v_rows, nb, offset, w, w_stride, c, acc, acc_stride, 0);
          return;
        }
        int64_t c16 = c;
        for (; c16 + 16 <= c + n; c16 += 16)
          block_accumulate_cols<Slice, S, 1, false>(v_rows, nb, offset, w, w_stride, c16, acc, acc_stride, 0);
        if (c16 < c + n)
          block_accumulate_cols<Slice, S, 1, true>(v_rows, nb, offset, w, w_stride, c16, acc, acc_stride,
                                                   lanes_from(c + n - c16));
      });
}

}  // namespace flashmem::attention_tile_avx512
#endif
