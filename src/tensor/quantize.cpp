// Fast row conversions: f16/bf16/f32 <-> f32, Q8_0/Q4_0 (de)quantization, activation quantizer.
#include <algorithm>
#include <cmath>
#include <cstring>

#include "tensor/block_quants.h"
#include "tensor/convert.h"
#include "tensor/kernels.h"
#include "tensor/kernels_internal.h"

#include "tensor/simd.h"

namespace flashmem {
namespace {

#if defined(__AVX512F__) && defined(__AVX512BW__) && defined(__AVX512VL__)
#define FLASHMEM_QUANTIZE_AVX512 1

// roundf for each lane: round half away from zero. v - trunc(v) is exact for |v| < 2^23, so the
// comparison against 0.5 decides the rounding exactly as roundf does.
inline __m512 round_half_away(__m512 v) {
  const __m512 t = _mm512_roundscale_ps(v, _MM_FROUND_TO_ZERO | _MM_FROUND_NO_EXC);
  const __m512 frac = _mm512_abs_ps(_mm512_sub_ps(v, t));
  const __mmask16 bump = _mm512_cmp_ps_mask(frac, _mm512_set1_ps(0.5f), _CMP_GE_OQ);
  const __m512 one = _mm512_or_ps(_mm512_set1_ps(1.0f),
                                  _mm512_and_ps(v, _mm512_castsi512_ps(_mm512_set1_epi32(INT32_MIN))));
  return _mm512_mask_add_ps(t, bump, t, one);
}

// 32 floats -> 32 int8 (Q8_0 reference rounding), returns the f32 scale before fp16 rounding.
inline float quantize_block_q8_0_avx512(const float* x, int8_t* qs) {
  const __m512 v0 = _mm512_loadu_ps(x);
  const __m512 v1 = _mm512_loadu_ps(x + 16);
  const float amax = _mm512_reduce_max_ps(_mm512_max_ps(_mm512_abs_ps(v0), _mm512_abs_ps(v1)));
  const float d = amax / 127.0f;
  const float id = d != 0.0f ? 1.0f / d : 0.0f;
  const __m512 scale = _mm512_set1_ps(id);
  const __m512i q0 = _mm512_cvttps_epi32(round_half_away(_mm512_mul_ps(v0, scale)));
  const __m512i q1 = _mm512_cvttps_epi32(round_half_away(_mm512_mul_ps(v1, scale)));
  _mm_storeu_si128(reinterpret_cast<__m128i*>(qs), _mm512_cvtsepi32_epi8(q0));
  _mm_storeu_si128(reinterpret_cast<__m128i*>(qs + 16), _mm512_cvtsepi32_epi8(q1));
  return d;
}
#elif defined(__AVX2__) && defined(__FMA__) && defined(__F16C__)
#define FLASHMEM_QUANTIZE_AVX2 1

// roundf for each lane, as round_half_away above: truncate, then step away from zero when the
// dropped fraction (exact for |v| < 2^23) is at least one half.
inline __m256 round_half_away(__m256 v) {
  const __m256 sign_bit = _mm256_castsi256_ps(_mm256_set1_epi32(INT32_MIN));
  const __m256 t = _mm256_round_ps(v, _MM_FROUND_TO_ZERO | _MM_FROUND_NO_EXC);
  const __m256 frac = _mm256_andnot_ps(sign_bit, _mm256_sub_ps(v, t));
  const __m256 bump = _mm256_cmp_ps(frac, _mm256_set1_ps(0.5f), _CMP_GE_OQ);
  const __m256 one = _mm256_or_ps(_mm256_set1_ps(1.0f), _mm256_and_ps(v, sign_bit));
  return _mm256_add_ps(t, _mm256_and_ps(bump, one));
}

// 32 floats -> 32 int8 (Q8_0 reference rounding), returns the f32 scale before fp16 rounding.
// amax, d and id are the same f32 operations as the reference, so the codes match bit for bit.
inline float quantize_block_q8_0_avx2(const float* x, int8_t* qs) {
  const __m256 sign_bit = _mm256_castsi256_ps(_mm256_set1_epi32(INT32_MIN));
  __m256 v[4];
  __m256 amax = _mm256_setzero_ps();
  for (int i = 0; i < 4; ++i) {
    v[i] = _mm256_loadu_ps(x + 8 * i);
    amax = _mm256_max_ps(amax, _mm256_andnot_ps(sign_bit, v[i]));
  }
  __m128 m = _mm_max_ps(_mm256_castps256_ps128(amax), _mm256_extractf128_ps(amax, 1));
  m = _mm_max_ps(m, _mm_movehl_ps(m, m));
  m = _mm_max_ss(m, _mm_movehdup_ps(m));
  const float d = _mm_cvtss_f32(m) / 127.0f;
  const float id = d != 0.0f ? 1.0f / d : 0.0f;
  const __m256 scale = _mm256_set1_ps(id);
  __m256i q[4];
  for (int i = 0; i < 4; ++i) q[i] = _mm256_cvttps_epi32(round_half_away(_mm256_mul_ps(v[i], scale)));
  // The packs work within 128-bit halves, leaving the 4-value groups in the order
  // 0 2 4 6 | 1 3 5 7 of the final 32; one cross-lane permute puts them back in order. The
  // values are within [-127, 127], so the saturation never triggers.
  const __m256i q16_01 = _mm256_packs_epi32(q[0], q[1]);
  const __m256i q16_23 = _mm256_packs_epi32(q[2], q[3]);
  const __m256i q8 = _mm256_packs_epi16(q16_01, q16_23);
  const __m256i ordered = _mm256_permutevar8x32_epi32(q8, _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7));
  _mm256_storeu_si256(reinterpret_cast<__m256i*>(qs), ordered);
  return d;
}
#endif

}  // namespace

void f32_to_f16_row(const float* src, uint16_t* dst, int64_t n) {
  int64_t i = 0;
#if defined(__AVX512F__)
  for (; i + 16 <= n; i += 16) {
    const __m256i h = _mm512_cvtps_ph(_mm512_loadu_ps(src + i), _MM_FROUND_TO_NEAREST_INT);
    _mm256_storeu_si256(reinterpret_cast<__m256i*>(dst + i), h);
  }
#elif defined(__F16C__)
  for (; i + 8 <= n; i += 8) {
    const __m128i h = _mm256_cvtps_ph(_mm256_loadu_ps(src + i), _MM_FROUND_TO_NEAREST_INT);
    _mm_storeu_si128(reinterpret_cast<__m128i*>(dst + i), h);
  }
#endif
  for (; i < n; ++i) dst[i] = f32_to_fp16(src[i]);
}

void f16_to_f32_row(const uint16_t* src, float* dst, int64_t n) {
  int64_t i = 0;
#if defined(__AVX512F__)
  for (; i + 16 <= n; i += 16) {
    const __m256i h = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(src + i));
    _mm512_storeu_ps(dst + i, _mm512_cvtph_ps(h));
  }
#elif defined(__F16C__)
  for (; i + 8 <= n; i += 8) {
    const __m128i h = _mm_loadu_si128(reinterpret_cast<const __m128i*>(src + i));
    _mm256_storeu_ps(dst + i, _mm256_cvtph_ps(h));
  }
#endif
  for (; i < n; ++i) dst[i] = fp16_to_f32(src[i]);
}

void dequantize_row(DType type, const void* src, float* dst, int64_t n) {
  switch (type) {
    case DType::F16:
      f16_to_f32_row(static_cast<const uint16_t*>(src), dst, n);
      return;
#if defined(__AVX512F__)
    case DType::BF16: {
      const auto* h = static_cast<const uint16_t*>(src);
      int64_t i = 0;
      for (; i + 16 <= n; i += 16) {
        const __m512i wide = _mm512_cvtepu16_epi32(
            _mm256_loadu_si256(reinterpret_cast<const __m256i*>(h + i)));
        _mm512_storeu_ps(dst + i, _mm512_castsi512_ps(_mm512_slli_epi32(wide, 16)));
      }
      for (; i < n; ++i) dst[i] = bf16_to_f32(h[i]);
      return;
    }
    case DType::Q8_0: {
      const auto* blocks = static_cast<const BlockQ8_0*>(src);
      for (int64_t b = 0; b < n / kQ8Block; ++b) {
        const __m512 d = _mm512_set1_ps(fp16_to_f32(blocks[b].d));
        const __m128i q0 = _mm_loadu_si128(reinterpret_cast<const __m128i*>(blocks[b].qs));
        const __m128i q1 = _mm_loadu_si128(reinterpret_cast<const __m128i*>(blocks[b].qs + 16));
        _mm512_storeu_ps(dst + b * kQ8Block, _mm512_mul_ps(d, _mm512_cvtepi32_ps(_mm512_cvtepi8_epi32(q0))));
        _mm512_storeu_ps(dst + b * kQ8Block + 16,
                         _mm512_mul_ps(d, _mm512_cvtepi32_ps(_mm512_cvtepi8_epi32(q1))));
      }
      return;
    }
    case DType::Q4_0: {
      const auto* blocks = static_cast<const BlockQ4_0*>(src);
      const __m128i low_mask = _mm_set1_epi8(0x0f);
      const __m128i eight = _mm_set1_epi8(8);
      for (int64_t b = 0; b < n / kQ4Block; ++b) {
        const __m512 d = _mm512_set1_ps(fp16_to_f32(blocks[b].d));
        const __m128i packed = _mm_loadu_si128(reinterpret_cast<const __m128i*>(blocks[b].qs));
        const __m128i lo = _mm_sub_epi8(_mm_and_si128(packed, low_mask), eight);
        const __m128i hi = _mm_sub_epi8(_mm_and_si128(_mm_srli_epi16(packed, 4), low_mask), eight);
        _mm512_storeu_ps(dst + b * kQ4Block, _mm512_mul_ps(d, _mm512_cvtepi32_ps(_mm512_cvtepi8_epi32(lo))));
        _mm512_storeu_ps(dst + b * kQ4Block + 16,
                         _mm512_mul_ps(d, _mm512_cvtepi32_ps(_mm512_cvtepi8_epi32(hi))));
      }
      return;
    }
#elif defined(FLASHMEM_QUANTIZE_AVX2)
    case DType::BF16: {
      // bf16 is the top half of an f32: widen to 32 bits and shift into place.
      const auto* h = static_cast<const uint16_t*>(src);
      int64_t i = 0;
      for (; i + 8 <= n; i += 8) {
        const __m256i wide = _mm256_cvtepu16_epi32(_mm_loadu_si128(reinterpret_cast<const __m128i*>(h + i)));
        _mm256_storeu_ps(dst + i, _mm256_castsi256_ps(_mm256_slli_epi32(wide, 16)));
      }
      for (; i < n; ++i) dst[i] = bf16_to_f32(h[i]);
      return;
    }
    case DType::Q8_0: {
      const auto* blocks = static_cast<const BlockQ8_0*>(src);
      for (int64_t b = 0; b < n / kQ8Block; ++b) {
        const __m256 d = _mm256_set1_ps(_cvtsh_ss(blocks[b].d));
        for (int j = 0; j < kQ8Block; j += 8) {
          const __m128i q = _mm_loadl_epi64(reinterpret_cast<const __m128i*>(blocks[b].qs + j));
          _mm256_storeu_ps(dst + b * kQ8Block + j, _mm256_mul_ps(d, _mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(q))));
        }
      }
      return;
    }
    case DType::Q4_0: {
      const auto* blocks = static_cast<const BlockQ4_0*>(src);
      const __m128i low_mask = _mm_set1_epi8(0x0f);
      const __m128i eight = _mm_set1_epi8(8);
      for (int64_t b = 0; b < n / kQ4Block; ++b) {
        const __m256 d = _mm256_set1_ps(_cvtsh_ss(blocks[b].d));
        const __m128i packed = _mm_loadu_si128(reinterpret_cast<const __m128i*>(blocks[b].qs));
        // Low nibbles are elements 0-15, high nibbles 16-31.
        const __m128i half[2] = {_mm_sub_epi8(_mm_and_si128(packed, low_mask), eight),
                                 _mm_sub_epi8(_mm_and_si128(_mm_srli_epi16(packed, 4), low_mask), eight)};
        float* out = dst + b * kQ4Block;
        for (int h = 0; h < 2; ++h) {
          _mm256_storeu_ps(out + 16 * h, _mm256_mul_ps(d, _mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(half[h]))));
          _mm256_storeu_ps(out + 16 * h + 8,
                           _mm256_mul_ps(d, _mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(_mm_srli_si128(half[h], 8)))));
        }
      }
      return;
    }
#endif
    default:
      if (detail::is_block_quant(type)) {
        detail::dequantize_block_quant(type, src, dst, n);
      } else {
        dequantize_row_ref(type, src, dst, n);
      }
  }
}

void quantize_row(DType type, const float* src, void* dst, int64_t n) {
  switch (type) {
    case DType::F16:
      f32_to_f16_row(src, static_cast<uint16_t*>(dst), n);
      return;
#if defined(FLASHMEM_QUANTIZE_AVX512)
    case DType::Q8_0: {
      auto* blocks = static_cast<BlockQ8_0*>(dst);
      for (int64_t b = 0; b < n / kQ8Block; ++b)
        blocks[b].d = f32_to_fp16(quantize_block_q8_0_avx512(src + b * kQ8Block, blocks[b].qs));
      return;
    }
#elif defined(FLASHMEM_QUANTIZE_AVX2)
    case DType::Q8_0: {
      auto* blocks = static_cast<BlockQ8_0*>(dst);
      for (int64_t b = 0; b < n / kQ8Block; ++b)
        blocks[b].d = f32_to_fp16(quantize_block_q8_0_avx2(src + b * kQ8Block, blocks[b].qs));
      return;
    }
#endif
    default:
      quantize_row_ref(type, src, dst, n);
  }
}

namespace detail {

void quantize_activation_q8(const float* x, int64_t n, ActivationQ8* out) {
  const int64_t n_blocks = n / kQ8Block;
  out->n_blocks = n_blocks;
  out->qs.resize(static_cast<size_t>(n));
  out->d.resize(static_cast<size_t>(n_blocks));
  out->lane_sums.resize(static_cast<size_t>(n_blocks * 8));
  out->s.resize(static_cast<size_t>(n_blocks));
  for (int64_t b = 0; b < n_blocks; ++b) {
    int8_t* qs = out->qs.data() + b * kQ8Block;
#if defined(FLASHMEM_QUANTIZE_AVX512)
    const float d_raw = quantize_block_q8_0_avx512(x + b * kQ8Block, qs);
#elif defined(FLASHMEM_QUANTIZE_AVX2)
    const float d_raw = quantize_block_q8_0_avx2(x + b * kQ8Block, qs);
#else
    BlockQ8_0 block;
    quantize_row_ref(DType::Q8_0, x + b * kQ8Block, &block, kQ8Block);
    std::memcpy(qs, block.qs, kQ8Block);
    float amax = 0.0f;  // recomputed: the reference quantizer keeps only the rounded scale
    for (int j = 0; j < kQ8Block; ++j) amax = std::max(amax, std::fabs(x[b * kQ8Block + j]));
    const float d_raw = amax / 127.0f;
#endif
    out->d[b] = fp16_to_f32(f32_to_fp16(d_raw));
#if defined(__AVX2__)
    // Lane sums of 4 bytes: maddubs with all-ones unsigned bytes adds signed byte pairs into
    // int16, madd with ones adds those pairs into int32 (|sum| <= 4·127, no saturation).
    const __m256i q = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(qs));
    const __m256i pairs = _mm256_maddubs_epi16(_mm256_set1_epi8(1), q);
    _mm256_storeu_si256(reinterpret_cast<__m256i*>(out->lane_sums.data() + b * 8),
                        _mm256_madd_epi16(pairs, _mm256_set1_epi16(1)));
#else
    for (int lane = 0; lane < 8; ++lane)
      out->lane_sums[b * 8 + lane] = qs[4 * lane] + qs[4 * lane + 1] + qs[4 * lane + 2] + qs[4 * lane + 3];
#endif
    int32_t sum = 0;
    for (int lane = 0; lane < 8; ++lane) sum += out->lane_sums[b * 8 + lane];
    out->s[b] = fp16_to_f32(f32_to_fp16(d_raw * static_cast<float>(sum)));
  }
}

}  // namespace detail
}  // namespace flashmem
