// <immintrin.h> for the kernel files, plus the few AVX2 and AVX-512 helpers several of them share. GCC 12's
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
#include <utility>

namespace flashmem::simd {

// Weight rows are streamed contiguously, so prefetching every weight address plus a fixed
// distance covers a matrix ahead of use. 8 KiB ahead (about 0.4 µs of streaming at 20 GB/s,
// enough to cover DRAM latency) measured best for matvec on the 125M shapes (4 KiB: -30%,
// 16 KiB: no gain); into L2 because an L1 target thrashed the 32 KiB L1 and halved the rate.
constexpr int64_t kPrefetchBytes = 8192;

inline void prefetch_ahead(const void* p) {
  _mm_prefetch(static_cast<const char*>(p) + kPrefetchBytes, _MM_HINT_T1);
}

// Sum of the 8 lanes: halves added pairwise, so 3 adds instead of 7.
inline float hsum256(__m256 v) {
  __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
  s = _mm_add_ps(s, _mm_movehl_ps(s, s));
  s = _mm_add_ss(s, _mm_movehdup_ps(s));
  return _mm_cvtss_f32(s);
}

// Largest of the 8 lanes (NaN lanes are not propagated reliably: max_ps returns its second
// operand when either is NaN).
inline float hmax256(__m256 v) {
  __m128 m = _mm_max_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
  m = _mm_max_ps(m, _mm_movehl_ps(m, m));
  m = _mm_max_ss(m, _mm_movehdup_ps(m));
  return _mm_cvtss_f32(m);
}

// All-ones in the first n lanes (n >= 0). AVX2 has no mask registers, but maskload and
// maskstore skip the lanes whose sign bit is clear without touching their memory, so a tail can
// be handled as one more vector without reading or writing past the end of an array.
// n > 8 gives all 8 lanes.
inline __m256i lane_mask(int64_t n) {
  const int lanes = static_cast<int>(n < 8 ? n : 8);
  return _mm256_cmpgt_epi32(_mm256_set1_epi32(lanes), _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7));
}

// N (<= 8) 16-bit values at(0) .. at(N - 1) in the low lanes of one vector (the others 0), built
// in registers. Storing them one by one to an array and reloading it as a vector stalls on
// store-to-load forwarding: in the q8_0 matvec on the Zen 5 VM that took the rate to a third.
template <int N, class At>
inline __m128i u16_lanes(At&& at) {
  static_assert(N >= 1 && N <= 8);
  __m128i v = _mm_cvtsi32_si128(at(0));
  [&]<int... i>(std::integer_sequence<int, i...>) {
    ((v = _mm_insert_epi16(v, at(i + 1), i + 1)), ...);
  }(std::make_integer_sequence<int, N - 1>{});
  return v;
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

// exp(x) per lane (softmax, attention): the range reduction and polynomial of exp512 below.
// AVX2 has no scalef, so 2^k is built in the exponent field; k reaches -150 for results in the subnormal range,
// below the smallest normal power 2^-126, so 2^k is applied as 2^(k/2) · 2^(k - k/2): both
// factors are normal, the first product is exact and only the second rounds, once, as scalef
// would. x is clamped to [-104, 89] first so k stays in [-150, 129] (the clamp does not change
// the result: below -103.9 the lane is zeroed, above 88.8 both are +inf).
inline __m256 exp256(__m256 x) {
  const __m256 xc = _mm256_min_ps(_mm256_max_ps(x, _mm256_set1_ps(-104.0f)), _mm256_set1_ps(89.0f));
  const __m256 k = _mm256_round_ps(_mm256_mul_ps(xc, _mm256_set1_ps(1.44269504088896341f)),
                                   _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
  __m256 r = _mm256_fnmadd_ps(k, _mm256_set1_ps(0.693359375f), xc);
  r = _mm256_fnmadd_ps(k, _mm256_set1_ps(-2.12194440e-4f), r);
  __m256 p = _mm256_set1_ps(1.0f / 720);
  p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.0f / 120));
  p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.0f / 24));
  p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.0f / 6));
  p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(0.5f));
  p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.0f));
  p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.0f));
  const __m256i ki = _mm256_cvtps_epi32(k);  // exact: k is already an integer
  const __m256i k1 = _mm256_srai_epi32(ki, 1);
  const __m256i k2 = _mm256_sub_epi32(ki, k1);
  const __m256i bias = _mm256_set1_epi32(127);
  const __m256 two_k1 = _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_add_epi32(k1, bias), 23));
  const __m256 two_k2 = _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_add_epi32(k2, bias), 23));
  const __m256 e = _mm256_mul_ps(_mm256_mul_ps(p, two_k1), two_k2);
  // Below -103.9 the result is exactly 0 as std::exp rounds it; NaN inputs give NaN (the clamp
  // above turned them into numbers, so they are put back here).
  const __m256 keep = _mm256_cmp_ps(x, _mm256_set1_ps(-103.9f), _CMP_NLT_UQ);
  const __m256 nan = _mm256_cmp_ps(x, x, _CMP_UNORD_Q);
  return _mm256_blendv_ps(_mm256_and_ps(e, keep), x, nan);
}

#if defined(__AVX512F__)
// exp(x) per lane, within 1e-6 relative of std::exp (test_kernels' ExpShiftSum checks both
// exps against it, subnormal results and the ends of the range included). exp(x) = 2^k · e^r
// with k = round(x·log2 e), r = x − k·ln2 split in two constants (Cody–Waite, Cephes' values) so
// r is exact to ~1 ulp; e^r by its Taylor polynomial to degree 6, whose truncation error on
// |r| <= ln2/2 is < 2e-8 relative; scalef applies 2^k with one rounding, subnormal results
// included. x is capped at 89 (above 88.8 the result is +inf either way) so +inf does not meet
// inf − inf in r; min returns its second operand, x, for NaN lanes, which stay NaN.
inline __m512 exp512(__m512 x) {
  const __m512 xc = _mm512_min_ps(_mm512_set1_ps(89.0f), x);
  const __m512 k = _mm512_roundscale_ps(_mm512_mul_ps(xc, _mm512_set1_ps(1.44269504088896341f)),
                                        _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
  __m512 r = _mm512_fnmadd_ps(k, _mm512_set1_ps(0.693359375f), xc);
  r = _mm512_fnmadd_ps(k, _mm512_set1_ps(-2.12194440e-4f), r);
  __m512 p = _mm512_set1_ps(1.0f / 720);
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.0f / 120));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.0f / 24));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.0f / 6));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(0.5f));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.0f));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.0f));
  // Below -103.9 the true result is under half the smallest subnormal: exactly 0, as std::exp
  // rounds it (-inf included; NaN lanes compare "not less" and stay NaN).
  const __mmask16 keep = _mm512_cmp_ps_mask(x, _mm512_set1_ps(-103.9f), _CMP_NLT_UQ);
  return _mm512_maskz_mov_ps(keep, _mm512_scalef_ps(p, k));
}
#endif

}  // namespace flashmem::simd
#endif
