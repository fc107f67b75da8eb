// What the tiled decode attention kernel's block kernels share, whatever the vector width: how a
// cache type's slice of a K or V row is read, the key block, and the q8_0 value weights. The block
// kernels are attention_tile_avx2.h and attention_tile_avx512.h; attention.cpp's tiled_chunk
// drives whichever the build has (FLASHMEM_ATTENTION_AVX512 picks the AVX-512 one). Internal to
// src/model: only attention.cpp includes it.
#pragma once
#include <algorithm>
#include <cstdint>

#include "model/attention.h"
#include "tensor/dtype.h"
#include "tensor/simd.h"

// The AVX-512 block kernels need F (16-lane f32), BW (16-bit masked loads of f16 tails), VL
// (masked 128-bit loads) and VNNI (dpbusd for the q8_0 scores); a build that lacks any of them
// runs the AVX2 kernels.
#if defined(__AVX512F__) && defined(__AVX512BW__) && defined(__AVX512VL__) && defined(__AVX512VNNI__)
#define FLASHMEM_ATTENTION_AVX512 1
#endif

namespace flashmem::attention_tile {

// Keys per block of the tiled kernel's two passes over a chunk (see tiled_chunk). A block's K (or
// V) rows, 16 KiB at kv_dim 256 in f16, stay in L1 while every kv head's slice of them is read.
constexpr int64_t kBlockKeys = 32;

}  // namespace flashmem::attention_tile

#if defined(__AVX2__) && defined(__FMA__) && defined(__F16C__)
namespace flashmem::attention_tile {

// How the kernel reads one kv head's slice of a K or V row in the cache type: value c of the
// slice is stored at values(slice, c), whose 8 values c .. c + 7 (c a multiple of 8) load8 turns
// into f32 lanes, and 16 values c .. c + 15 load16 (AVX-512; load16 with a mask reads only the
// mask's lanes, the others 0); kScaled: to be multiplied by the scale of their 32-value block
// (q8_0). Values lie kValueBytes apart within a block, so callers find a block's values once and
// step through it by address. bytes(hd) = the slice's size. A q8_0 slice's scores take
// block_scores_q8 (integer dot products), plain types' block_scores.
struct F16Slice {
  static constexpr bool kScaled = false;
  static constexpr int64_t kValueBytes = 2;
  static const uint8_t* values(const uint8_t* slice, int64_t c) { return slice + c * kValueBytes; }
  static __m256 load8(const uint8_t* p) { return simd::load_f16x8(reinterpret_cast<const uint16_t*>(p)); }
#if defined(FLASHMEM_ATTENTION_AVX512)
  static __m512 load16(const uint8_t* p) {
    return _mm512_cvtph_ps(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(p)));
  }
  static __m512 load16(const uint8_t* p, __mmask16 lanes) {
    return _mm512_cvtph_ps(_mm256_maskz_loadu_epi16(lanes, p));
  }
#endif
  static size_t bytes(int64_t hd) { return static_cast<size_t>(hd * kValueBytes); }
};
struct F32Slice {
  static constexpr bool kScaled = false;
  static constexpr int64_t kValueBytes = 4;
  static const uint8_t* values(const uint8_t* slice, int64_t c) { return slice + c * kValueBytes; }
  static __m256 load8(const uint8_t* p) { return _mm256_loadu_ps(reinterpret_cast<const float*>(p)); }
#if defined(FLASHMEM_ATTENTION_AVX512)
  static __m512 load16(const uint8_t* p) { return _mm512_loadu_ps(p); }
  static __m512 load16(const uint8_t* p, __mmask16 lanes) { return _mm512_maskz_loadu_ps(lanes, p); }
#endif
  static size_t bytes(int64_t hd) { return static_cast<size_t>(hd * kValueBytes); }
};
// q8_0: blocks of 32 int8 values q sharing an f16 scale d, value = d · q (the slice starts on a
// block: head_dim is a multiple of 32, see check_kv_type).
struct Q8Slice {
  static constexpr bool kScaled = true;
  static constexpr int64_t kValueBytes = 1;
  static const BlockQ8_0* block(const uint8_t* slice, int64_t c) {
    return reinterpret_cast<const BlockQ8_0*>(slice) + c / kQ8Block;
  }
  static const uint8_t* values(const uint8_t* slice, int64_t c) {
    return reinterpret_cast<const uint8_t*>(block(slice, c)->qs + c % kQ8Block);
  }
  static __m256 load8(const uint8_t* p) {
    return _mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(_mm_loadl_epi64(reinterpret_cast<const __m128i*>(p))));
  }
#if defined(FLASHMEM_ATTENTION_AVX512)
  static __m512 load16(const uint8_t* p) {
    return _mm512_cvtepi32_ps(_mm512_cvtepi8_epi32(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p))));
  }
  static __m512 load16(const uint8_t* p, __mmask16 lanes) {
    return _mm512_cvtepi32_ps(_mm512_cvtepi8_epi32(_mm_maskz_loadu_epi8(lanes, p)));
  }
#endif
  static size_t bytes(int64_t hd) { return static_cast<size_t>(hd / kQ8Block) * sizeof(BlockQ8_0); }
};

// w [S, kBlockKeys] = p_sj · d_j for the nb (<= kBlockKeys) keys of a q8_0 cache, d_j the scale of
// v_j's 32-value block holding column c: the scale joins the weight once per key and block, 8 keys
// per multiply, instead of once per key in the accumulation loop. p_s at p + s ·
// kAttentionChunkKeys (read up to the next multiple of 8 keys, within the chunk's row); lanes
// from nb on are not used.
template <int S>
void scaled_weights(const uint8_t* const* v_rows, int64_t nb, size_t offset, const float* p, int64_t c,
                    float* w) {
  for (int64_t j0 = 0; j0 < nb; j0 += 8) {
    // [8] the f16 block scales of keys j0 .. j0 + 7 (past nb: the last key's, unused), as f32
    const __m256 d8 = _mm256_cvtph_ps(simd::u16_lanes<8>(
        [&](int i) { return Q8Slice::block(v_rows[std::min<int64_t>(j0 + i, nb - 1)] + offset, c)->d; }));
    for (int s = 0; s < S; ++s)
      _mm256_storeu_ps(w + s * kBlockKeys + j0,
                       _mm256_mul_ps(_mm256_loadu_ps(p + s * kAttentionChunkKeys + j0), d8));
  }
}

// Calls cols(c, n, w, w_stride) for the first vd values of the V slices in steps of n = kStep
// columns (the last step shorter) with the S heads' weights for them, head s's at w + s ·
// w_stride: p itself, or for a q8_0 cache p · d of the step's one block (kStep = 32).
template <class Slice, int S, int64_t kStep, class Cols>
void for_each_column_step(const uint8_t* const* v_rows, int64_t nb, size_t offset, const float* p, int64_t vd,
                          Cols&& cols) {
  static_assert(!Slice::kScaled || kStep == kQ8Block);
  alignas(32) float scaled[S * kBlockKeys];  // [S, kBlockKeys] p · d for one q8_0 block of columns
  for (int64_t c = 0; c < vd; c += kStep) {
    if constexpr (Slice::kScaled) {
      scaled_weights<S>(v_rows, nb, offset, p, c, scaled);
      cols(c, std::min(kStep, vd - c), scaled, kBlockKeys);
    } else {
      cols(c, std::min(kStep, vd - c), p, kAttentionChunkKeys);
    }
  }
}

}  // namespace flashmem::attention_tile
#endif
