#include "tensor/box_dot.h"

#include <algorithm>

#include "tensor/simd.h"

namespace flashmem {

float box_dot_max_ref(const float* q, const float* lo, const float* hi, int64_t n) {
  float sum = 0.0f;
  for (int64_t d = 0; d < n; ++d) sum += std::max(q[d] * lo[d], q[d] * hi[d]);
  return sum;
}

#if defined(__AVX2__)
// AVX2 (8 lanes) rather than AVX-512: it runs on every x86-64 machine we target, including the
// Zen 3 build hosts without AVX-512, so the fast path is the one the tests exercise.
float box_dot_max(const float* q, const float* lo, const float* hi, int64_t n) {
  // Two accumulators: head dims are 64 or 128, so the loop is short and latency-bound.
  __m256 acc0 = _mm256_setzero_ps(), acc1 = _mm256_setzero_ps();
  auto term = [&](int64_t i) {
    const __m256 qv = _mm256_loadu_ps(q + i);
    return _mm256_max_ps(_mm256_mul_ps(qv, _mm256_loadu_ps(lo + i)),
                         _mm256_mul_ps(qv, _mm256_loadu_ps(hi + i)));
  };
  int64_t d = 0;
  for (; d + 16 <= n; d += 16) {
    acc0 = _mm256_add_ps(acc0, term(d));
    acc1 = _mm256_add_ps(acc1, term(d + 8));
  }
  for (; d + 8 <= n; d += 8) acc0 = _mm256_add_ps(acc0, term(d));
  const __m256 acc = _mm256_add_ps(acc0, acc1);
  const __m128 half = _mm_add_ps(_mm256_castps256_ps128(acc), _mm256_extractf128_ps(acc, 1));
  const __m128 quad = _mm_add_ps(half, _mm_movehl_ps(half, half));
  float sum = _mm_cvtss_f32(_mm_add_ss(quad, _mm_shuffle_ps(quad, quad, 1)));
  for (; d < n; ++d) sum += std::max(q[d] * lo[d], q[d] * hi[d]);
  return sum;
}
#else
float box_dot_max(const float* q, const float* lo, const float* hi, int64_t n) {
  return box_dot_max_ref(q, lo, hi, n);
}
#endif

}  // namespace flashmem
