// <immintrin.h> for the kernel files, plus the few AVX2 helpers several of them share. GCC 12's
// AVX-512 intrinsics initialise their "undefined" operands from themselves and trip
// -Wuninitialized at every inlined call (GCC bug 105593, fixed in 12.3/13); the warnings point
// into the system header, so they are silenced only there.
#pragma once
#if defined(__x86_64__)
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wuninitialized"
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#include <immintrin.h>
#pragma GCC diagnostic pop
#endif

#if defined(__AVX2__) && defined(__FMA__) && defined(__F16C__)
#include <cstdint>
#include <cstring>

namespace flashmem::simd {

// Sum of the 8 lanes: halves added pairwise, so 3 adds instead of 7.
inline float hsum256(__m256 v) {
  __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
  s = _mm_add_ps(s, _mm_movehl_ps(s, s));
  s = _mm_add_ss(s, _mm_movehdup_ps(s));
  return _mm_cvtss_f32(s);
}

// All-ones in the first n lanes (n >= 0). AVX2 has no mask registers, but maskload and
// maskstore skip the lanes whose sign bit is clear without touching their memory, so a tail can
// be handled as one more vector without reading or writing past the end of an array.
// n > 8 gives all 8 lanes.
inline __m256i lane_mask(int64_t n) {
  const int lanes = static_cast<int>(n < 8 ? n : 8);
  return _mm256_cmpgt_epi32(_mm256_set1_epi32(lanes), _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7));
}

// 8 f16 values as f32.
inline __m256 load_f16x8(const uint16_t* p) {
  return _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p)));
}

// The first n (< 8) f16 values as f32, the other lanes 0. There is no 16-bit maskload, so the
// tail goes through a zeroed buffer.
inline __m256 load_f16x8_tail(const uint16_t* p, int64_t n) {
  uint16_t buf[8] = {};
  std::memcpy(buf, p, static_cast<size_t>(n) * sizeof(uint16_t));
  return load_f16x8(buf);
}

// In-register transpose of an 8 × 8 f32 tile: v[i] holds row i on entry, column i on exit.
// unpack interleaves row pairs, shuffle gathers 4-row columns within each 128-bit half, and
// permute2f128 joins the halves of rows 0-3 and 4-7.
inline void transpose_8x8(__m256 (&v)[8]) {
  __m256 t[8];
  for (int i = 0; i < 4; ++i) {
    t[2 * i] = _mm256_unpacklo_ps(v[2 * i], v[2 * i + 1]);
    t[2 * i + 1] = _mm256_unpackhi_ps(v[2 * i], v[2 * i + 1]);
  }
  // u[4g + j], 128-bit half H: rows 4g..4g+3 of column 4H + j.
  __m256 u[8];
  for (int g = 0; g < 2; ++g) {
    u[4 * g + 0] = _mm256_shuffle_ps(t[4 * g], t[4 * g + 2], 0x44);
    u[4 * g + 1] = _mm256_shuffle_ps(t[4 * g], t[4 * g + 2], 0xee);
    u[4 * g + 2] = _mm256_shuffle_ps(t[4 * g + 1], t[4 * g + 3], 0x44);
    u[4 * g + 3] = _mm256_shuffle_ps(t[4 * g + 1], t[4 * g + 3], 0xee);
  }
  for (int j = 0; j < 4; ++j) {
    v[j] = _mm256_permute2f128_ps(u[j], u[4 + j], 0x20);
    v[4 + j] = _mm256_permute2f128_ps(u[j], u[4 + j], 0x31);
  }
}

}  // namespace flashmem::simd
#endif
