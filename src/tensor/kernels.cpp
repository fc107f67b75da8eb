// Fast single-thread vector ops (dot, axpy, rms_norm). AVX-512 paths handle tails with masks,
// AVX2 paths with maskload/maskstore (f32) or a zero-padded copy (f16); builds with neither use
// the _ref twins.
#include <algorithm>
#include <cmath>

#include "tensor/convert.h"
#include "tensor/kernels.h"

#include "tensor/simd.h"

namespace flashmem {

const char* kernel_isa() {
#if defined(__AVX512F__) && defined(__AVX512BW__) && defined(__AVX512VL__) && defined(__AVX512VNNI__)
  return "avx512-vnni";
#elif defined(__AVX512F__) && defined(__AVX512BW__) && defined(__AVX512VL__)
  return "avx512";
#elif defined(__AVX2__) && defined(__FMA__) && defined(__F16C__)
  return "avx2";
#else
  return "scalar";
#endif
}

#if defined(__AVX512F__)
namespace {

inline __mmask16 tail_mask(int64_t remaining) {
  return static_cast<__mmask16>((1u << remaining) - 1u);
}

inline __m512 load_f16(const uint16_t* p) {
  return _mm512_cvtph_ps(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(p)));
}

inline __m512 load_f16_masked(const uint16_t* p, __mmask16 mask) {
  return _mm512_cvtph_ps(_mm256_maskz_loadu_epi16(mask, p));
}

}  // namespace

float dot_f32(const float* a, const float* b, int64_t n) {
  // Four accumulators cover the 4-cycle FMA latency at one FMA per cycle.
  __m512 acc0 = _mm512_setzero_ps(), acc1 = _mm512_setzero_ps();
  __m512 acc2 = _mm512_setzero_ps(), acc3 = _mm512_setzero_ps();
  int64_t i = 0;
  for (; i + 64 <= n; i += 64) {
    acc0 = _mm512_fmadd_ps(_mm512_loadu_ps(a + i), _mm512_loadu_ps(b + i), acc0);
    acc1 = _mm512_fmadd_ps(_mm512_loadu_ps(a + i + 16), _mm512_loadu_ps(b + i + 16), acc1);
    acc2 = _mm512_fmadd_ps(_mm512_loadu_ps(a + i + 32), _mm512_loadu_ps(b + i + 32), acc2);
    acc3 = _mm512_fmadd_ps(_mm512_loadu_ps(a + i + 48), _mm512_loadu_ps(b + i + 48), acc3);
  }
  for (; i + 16 <= n; i += 16) acc0 = _mm512_fmadd_ps(_mm512_loadu_ps(a + i), _mm512_loadu_ps(b + i), acc0);
  if (i < n) {
    const __mmask16 m = tail_mask(n - i);
    acc1 = _mm512_fmadd_ps(_mm512_maskz_loadu_ps(m, a + i), _mm512_maskz_loadu_ps(m, b + i), acc1);
  }
  return _mm512_reduce_add_ps(_mm512_add_ps(_mm512_add_ps(acc0, acc1), _mm512_add_ps(acc2, acc3)));
}

float dot_f16_f32(const uint16_t* a, const float* b, int64_t n) {
  __m512 acc0 = _mm512_setzero_ps(), acc1 = _mm512_setzero_ps();
  int64_t i = 0;
  for (; i + 32 <= n; i += 32) {
    acc0 = _mm512_fmadd_ps(load_f16(a + i), _mm512_loadu_ps(b + i), acc0);
    acc1 = _mm512_fmadd_ps(load_f16(a + i + 16), _mm512_loadu_ps(b + i + 16), acc1);
  }
  for (; i + 16 <= n; i += 16) acc0 = _mm512_fmadd_ps(load_f16(a + i), _mm512_loadu_ps(b + i), acc0);
  if (i < n) {
    const __mmask16 m = tail_mask(n - i);
    acc1 = _mm512_fmadd_ps(load_f16_masked(a + i, m), _mm512_maskz_loadu_ps(m, b + i), acc1);
  }
  return _mm512_reduce_add_ps(_mm512_add_ps(acc0, acc1));
}

void axpy_f32(float alpha, const float* x, float* y, int64_t n) {
  const __m512 a = _mm512_set1_ps(alpha);
  int64_t i = 0;
  for (; i + 16 <= n; i += 16)
    _mm512_storeu_ps(y + i, _mm512_fmadd_ps(a, _mm512_loadu_ps(x + i), _mm512_loadu_ps(y + i)));
  if (i < n) {
    const __mmask16 m = tail_mask(n - i);
    _mm512_mask_storeu_ps(y + i, m,
                          _mm512_fmadd_ps(a, _mm512_maskz_loadu_ps(m, x + i), _mm512_maskz_loadu_ps(m, y + i)));
  }
}

void axpy_f16(float alpha, const uint16_t* x, float* y, int64_t n) {
  const __m512 a = _mm512_set1_ps(alpha);
  int64_t i = 0;
  for (; i + 16 <= n; i += 16)
    _mm512_storeu_ps(y + i, _mm512_fmadd_ps(a, load_f16(x + i), _mm512_loadu_ps(y + i)));
  if (i < n) {
    const __mmask16 m = tail_mask(n - i);
    _mm512_mask_storeu_ps(y + i, m,
                          _mm512_fmadd_ps(a, load_f16_masked(x + i, m), _mm512_maskz_loadu_ps(m, y + i)));
  }
}

void rms_norm(const float* x, const float* weight, float* y, int64_t n, float eps) {
  __m512 acc0 = _mm512_setzero_ps(), acc1 = _mm512_setzero_ps();
  int64_t i = 0;
  for (; i + 32 <= n; i += 32) {
    const __m512 v0 = _mm512_loadu_ps(x + i), v1 = _mm512_loadu_ps(x + i + 16);
    acc0 = _mm512_fmadd_ps(v0, v0, acc0);
    acc1 = _mm512_fmadd_ps(v1, v1, acc1);
  }
  for (; i < n; i += 16) {
    const __mmask16 m = n - i >= 16 ? static_cast<__mmask16>(0xffff) : tail_mask(n - i);
    const __m512 v = _mm512_maskz_loadu_ps(m, x + i);
    acc0 = _mm512_fmadd_ps(v, v, acc0);
  }
  const float sum_sq = _mm512_reduce_add_ps(_mm512_add_ps(acc0, acc1));
  const __m512 scale = _mm512_set1_ps(1.0f / std::sqrt(sum_sq / static_cast<float>(n) + eps));
  for (i = 0; i < n; i += 16) {
    const __mmask16 m = n - i >= 16 ? static_cast<__mmask16>(0xffff) : tail_mask(n - i);
    const __m512 v = _mm512_mul_ps(_mm512_maskz_loadu_ps(m, x + i), scale);
    _mm512_mask_storeu_ps(y + i, m, _mm512_mul_ps(v, _mm512_maskz_loadu_ps(m, weight + i)));
  }
}

#elif defined(__AVX2__) && defined(__FMA__) && defined(__F16C__)

using simd::hsum256;
using simd::lane_mask;
using simd::load_f16x8;
using simd::load_f16x8_tail;

float dot_f32(const float* a, const float* b, int64_t n) {
  // Four accumulators: two FMA pipes with 4-cycle latency need several independent chains.
  __m256 acc0 = _mm256_setzero_ps(), acc1 = _mm256_setzero_ps();
  __m256 acc2 = _mm256_setzero_ps(), acc3 = _mm256_setzero_ps();
  int64_t i = 0;
  for (; i + 32 <= n; i += 32) {
    acc0 = _mm256_fmadd_ps(_mm256_loadu_ps(a + i), _mm256_loadu_ps(b + i), acc0);
    acc1 = _mm256_fmadd_ps(_mm256_loadu_ps(a + i + 8), _mm256_loadu_ps(b + i + 8), acc1);
    acc2 = _mm256_fmadd_ps(_mm256_loadu_ps(a + i + 16), _mm256_loadu_ps(b + i + 16), acc2);
    acc3 = _mm256_fmadd_ps(_mm256_loadu_ps(a + i + 24), _mm256_loadu_ps(b + i + 24), acc3);
  }
  for (; i + 8 <= n; i += 8) acc0 = _mm256_fmadd_ps(_mm256_loadu_ps(a + i), _mm256_loadu_ps(b + i), acc0);
  if (i < n) {
    const __m256i m = lane_mask(n - i);
    acc1 = _mm256_fmadd_ps(_mm256_maskload_ps(a + i, m), _mm256_maskload_ps(b + i, m), acc1);
  }
  return hsum256(_mm256_add_ps(_mm256_add_ps(acc0, acc1), _mm256_add_ps(acc2, acc3)));
}

float dot_f16_f32(const uint16_t* a, const float* b, int64_t n) {
  __m256 acc0 = _mm256_setzero_ps(), acc1 = _mm256_setzero_ps();
  int64_t i = 0;
  for (; i + 16 <= n; i += 16) {
    acc0 = _mm256_fmadd_ps(load_f16x8(a + i), _mm256_loadu_ps(b + i), acc0);
    acc1 = _mm256_fmadd_ps(load_f16x8(a + i + 8), _mm256_loadu_ps(b + i + 8), acc1);
  }
  for (; i + 8 <= n; i += 8) acc0 = _mm256_fmadd_ps(load_f16x8(a + i), _mm256_loadu_ps(b + i), acc0);
  if (i < n) {
    acc1 = _mm256_fmadd_ps(load_f16x8_tail(a + i, n - i), _mm256_maskload_ps(b + i, lane_mask(n - i)), acc1);
  }
  return hsum256(_mm256_add_ps(acc0, acc1));
}

void axpy_f32(float alpha, const float* x, float* y, int64_t n) {
  const __m256 a = _mm256_set1_ps(alpha);
  int64_t i = 0;
  for (; i + 8 <= n; i += 8)
    _mm256_storeu_ps(y + i, _mm256_fmadd_ps(a, _mm256_loadu_ps(x + i), _mm256_loadu_ps(y + i)));
  if (i < n) {
    const __m256i m = lane_mask(n - i);
    _mm256_maskstore_ps(y + i, m, _mm256_fmadd_ps(a, _mm256_maskload_ps(x + i, m), _mm256_maskload_ps(y + i, m)));
  }
}

void axpy_f16(float alpha, const uint16_t* x, float* y, int64_t n) {
  const __m256 a = _mm256_set1_ps(alpha);
  int64_t i = 0;
  for (; i + 8 <= n; i += 8)
    _mm256_storeu_ps(y + i, _mm256_fmadd_ps(a, load_f16x8(x + i), _mm256_loadu_ps(y + i)));
  if (i < n) {
    const __m256i m = lane_mask(n - i);
    _mm256_maskstore_ps(y + i, m, _mm256_fmadd_ps(a, load_f16x8_tail(x + i, n - i), _mm256_maskload_ps(y + i, m)));
  }
}

// G heads (G <= 4) against one K row: per head the same two accumulators, in the same order, as
// dot_f16_f32 above (so the results are bit-identical to it), but each 8-element chunk of the
// row is converted once instead of G times; 8 accumulators + the row + a query vector fit the
// 16 registers.
template <int G>
void dot_f16_f32_group(const uint16_t* k, const float* q, int64_t n, float* out) {
  __m256 acc0[G], acc1[G];
  for (int g = 0; g < G; ++g) acc0[g] = acc1[g] = _mm256_setzero_ps();
  int64_t i = 0;
  for (; i + 16 <= n; i += 16) {
    const __m256 k0 = load_f16x8(k + i), k1 = load_f16x8(k + i + 8);
#pragma GCC unroll 4
    for (int g = 0; g < G; ++g) {
      acc0[g] = _mm256_fmadd_ps(k0, _mm256_loadu_ps(q + g * n + i), acc0[g]);
      acc1[g] = _mm256_fmadd_ps(k1, _mm256_loadu_ps(q + g * n + i + 8), acc1[g]);
    }
  }
  for (; i + 8 <= n; i += 8) {
    const __m256 k0 = load_f16x8(k + i);
    for (int g = 0; g < G; ++g) acc0[g] = _mm256_fmadd_ps(k0, _mm256_loadu_ps(q + g * n + i), acc0[g]);
  }
  if (i < n) {
    const __m256 k0 = load_f16x8_tail(k + i, n - i);
    const __m256i m = lane_mask(n - i);
    for (int g = 0; g < G; ++g) acc1[g] = _mm256_fmadd_ps(k0, _mm256_maskload_ps(q + g * n + i, m), acc1[g]);
  }
  for (int g = 0; g < G; ++g) out[g] = hsum256(_mm256_add_ps(acc0[g], acc1[g]));
}

void dot_f16_f32_heads(const uint16_t* k, const float* q, int64_t n_q, int64_t n, float* out) {
  for (int64_t g = 0; g < n_q; g += 4) {
    switch (std::min<int64_t>(4, n_q - g)) {
      case 1: dot_f16_f32_group<1>(k, q + g * n, n, out + g); break;
      case 2: dot_f16_f32_group<2>(k, q + g * n, n, out + g); break;
      case 3: dot_f16_f32_group<3>(k, q + g * n, n, out + g); break;
      default: dot_f16_f32_group<4>(k, q + g * n, n, out + g); break;
    }
  }
}

void rms_norm(const float* x, const float* weight, float* y, int64_t n, float eps) {
  __m256 acc0 = _mm256_setzero_ps(), acc1 = _mm256_setzero_ps();
  int64_t i = 0;
  for (; i + 16 <= n; i += 16) {
    const __m256 v0 = _mm256_loadu_ps(x + i), v1 = _mm256_loadu_ps(x + i + 8);
    acc0 = _mm256_fmadd_ps(v0, v0, acc0);
    acc1 = _mm256_fmadd_ps(v1, v1, acc1);
  }
  for (; i < n; i += 8) {
    const __m256 v = _mm256_maskload_ps(x + i, lane_mask(n - i));  // lane_mask saturates at 8
    acc0 = _mm256_fmadd_ps(v, v, acc0);
  }
  const float sum_sq = hsum256(_mm256_add_ps(acc0, acc1));
  const __m256 scale = _mm256_set1_ps(1.0f / std::sqrt(sum_sq / static_cast<float>(n) + eps));
  for (i = 0; i < n; i += 8) {
    const __m256i m = lane_mask(n - i);
    const __m256 v = _mm256_mul_ps(_mm256_maskload_ps(x + i, m), scale);
    _mm256_maskstore_ps(y + i, m, _mm256_mul_ps(v, _mm256_maskload_ps(weight + i, m)));
  }
}

#else  // no SIMD: the reference loops are the implementation.

float dot_f32(const float* a, const float* b, int64_t n) { return dot_f32_ref(a, b, n); }
float dot_f16_f32(const uint16_t* a, const float* b, int64_t n) { return dot_f16_f32_ref(a, b, n); }
void axpy_f32(float alpha, const float* x, float* y, int64_t n) { axpy_f32_ref(alpha, x, y, n); }
void axpy_f16(float alpha, const uint16_t* x, float* y, int64_t n) { axpy_f16_ref(alpha, x, y, n); }
void rms_norm(const float* x, const float* weight, float* y, int64_t n, float eps) {
  rms_norm_ref(x, weight, y, n, eps);
}

#endif

#if !(defined(__AVX2__) && defined(__FMA__) && defined(__F16C__)) || defined(__AVX512F__)
// Without the AVX2 group kernel (AVX-512 builds keep their measured per-head kernel; scalar
// builds have nothing to share): one single-head call per head.
void dot_f16_f32_heads(const uint16_t* k, const float* q, int64_t n_q, int64_t n, float* out) {
  for (int64_t g = 0; g < n_q; ++g) out[g] = dot_f16_f32(k, q + g * n, n);
}
#endif

}  // namespace flashmem
