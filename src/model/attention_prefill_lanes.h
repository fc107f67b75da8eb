// The lane types of the prefill attention kernel (attention_prefill.cpp only): one SIMD vector of
// tile rows with the few operations the kernel uses, and the register-block geometry each
// vector width sets. Avx512Lanes (16 lanes) where the build has AVX-512 F/BW/VL/DQ, else
// Avx2Lanes (8 lanes) where it has AVX2/FMA/F16C, else scalar lanes: NativeLanes. TwinLanes are
// scalar lanes of the native geometry: the same operations lane by lane (fused multiply-adds
// included), std::exp instead of the vector exp; attend_ref runs them on the same plan.
#pragma once
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>

#include "tensor/simd.h"

namespace flashmem::prefill {

// Geometry: kLanes rows per vector; a tile aims for kMaxVecs vectors of rows; a score block holds
// kBlockKeys keys and a value block kBlockCols value columns for up to kMaxVecs row vectors in
// registers (block_scores, block_values). kBlockKeys divides kPrefillBlockKeys.
struct Avx2Geometry {
  static constexpr int64_t kLanes = 8;  // f32 lanes of a 256-bit register
  // 3 row vectors × 4 keys (or 4 value columns) = 12 accumulators, plus 3 row loads and 1
  // broadcast: the 16 ymm registers. 24 rows: a tile of 8 tokens at 3 query heads per kv head.
  static constexpr int kMaxVecs = 3;
  static constexpr int kBlockKeys = 4;
  static constexpr int kBlockCols = 4;
};

struct Avx512Geometry {
  static constexpr int64_t kLanes = 16;  // f32 lanes of a 512-bit register
  // 3 row vectors × 8 keys (or 8 value columns) = 24 accumulators, plus 3 row loads and 1
  // broadcast: 28 of the 32 zmm registers, the rest for the compiler's constants and addresses
  // (GCC 12 still keeps one row load on the stack in the score loop; 4 keys, which do not spill,
  // measured 1.4x slower on bench_attention's Attention/prefill_tiled/512/16384). 48 rows are whole tiles at groups 1, 2, 3, 4, 6 and 8 (16 tokens of the 125M model's 3 heads),
  // and each K/V block gathered serves twice AVX2's rows. 4 vectors × 6 keys fit too, but 6 keys
  // do not divide a 32-key block and 64 rows pad groups 3 and 6. 8 value columns divide the usual
  // value widths (64, 128).
  static constexpr int kMaxVecs = 3;
  static constexpr int kBlockKeys = 8;
  static constexpr int kBlockCols = 8;
};

template <class Geometry>
struct ScalarLanes : Geometry {
  using Geometry::kLanes;  // rows per vector, as the fast path the lanes are a twin of
  struct V {
    float x[kLanes];
  };
  using M = V;  // a lane is selected where x != 0
  static V load(const float* p) {
    V v;
    std::memcpy(v.x, p, sizeof v.x);
    return v;
  }
  static void store(float* p, const V& v) { std::memcpy(p, v.x, sizeof v.x); }
  static V set1(float f) {
    V v;
    std::fill(v.x, v.x + kLanes, f);
    return v;
  }
  template <class F>
  static V map(const V& a, const V& b, F f) {
    V v;
    for (int64_t i = 0; i < kLanes; ++i) v.x[i] = f(a.x[i], b.x[i]);
    return v;
  }
  static V fma(const V& a, const V& b, const V& c) {
    V v;
    for (int64_t i = 0; i < kLanes; ++i) v.x[i] = std::fma(a.x[i], b.x[i], c.x[i]);
    return v;
  }
  static V mul(const V& a, const V& b) { return map(a, b, [](float x, float y) { return x * y; }); }
  static V add(const V& a, const V& b) { return map(a, b, [](float x, float y) { return x + y; }); }
  static V sub(const V& a, const V& b) { return map(a, b, [](float x, float y) { return x - y; }); }
  static V max(const V& a, const V& b) { return map(a, b, [](float x, float y) { return x > y ? x : y; }); }
  static M gt(const V& a, const V& b) { return map(a, b, [](float x, float y) { return x > y ? 1.0f : 0.0f; }); }
  static V exp(const V& a) { return map(a, a, [](float x, float) { return std::exp(x); }); }
  // Lanes whose row does not attend position pos (lo[i] > pos or pos > hi[i]).
  static M excluded(int32_t pos, const int32_t* lo, const int32_t* hi) {
    V v;
    for (int64_t i = 0; i < kLanes; ++i) v.x[i] = lo[i] > pos || pos > hi[i] ? 1.0f : 0.0f;
    return v;
  }
  static V select(const M& m, const V& if_set, const V& if_clear) {
    V v;
    for (int64_t i = 0; i < kLanes; ++i) v.x[i] = m.x[i] != 0 ? if_set.x[i] : if_clear.x[i];
    return v;
  }
};

#if defined(__AVX2__) && defined(__FMA__) && defined(__F16C__)
struct Avx2Lanes : Avx2Geometry {
  using V = __m256;
  using M = __m256;  // all-ones lanes selected
  static V load(const float* p) { return _mm256_loadu_ps(p); }
  static void store(float* p, V v) { _mm256_storeu_ps(p, v); }
  static V set1(float f) { return _mm256_set1_ps(f); }
  static V fma(V a, V b, V c) { return _mm256_fmadd_ps(a, b, c); }
  static V mul(V a, V b) { return _mm256_mul_ps(a, b); }
  static V add(V a, V b) { return _mm256_add_ps(a, b); }
  static V sub(V a, V b) { return _mm256_sub_ps(a, b); }
  static V max(V a, V b) { return _mm256_max_ps(a, b); }  // b where a is not greater, as ScalarLanes
  static M gt(V a, V b) { return _mm256_cmp_ps(a, b, _CMP_GT_OQ); }
  static V exp(V a) { return simd::exp256(a); }
  static M excluded(int32_t pos, const int32_t* lo, const int32_t* hi) {
    const __m256i p = _mm256_set1_epi32(pos);
    const __m256i l = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(lo));
    const __m256i h = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(hi));
    return _mm256_castsi256_ps(_mm256_or_si256(_mm256_cmpgt_epi32(l, p), _mm256_cmpgt_epi32(p, h)));
  }
  static V select(M m, V if_set, V if_clear) { return _mm256_blendv_ps(if_clear, if_set, m); }
};
#endif

#if defined(__AVX512F__) && defined(__AVX512BW__) && defined(__AVX512VL__) && defined(__AVX512DQ__)
struct Avx512Lanes : Avx512Geometry {
  using V = __m512;
  using M = __mmask16;  // set bits selected
  static V load(const float* p) { return _mm512_loadu_ps(p); }
  static void store(float* p, V v) { _mm512_storeu_ps(p, v); }
  static V set1(float f) { return _mm512_set1_ps(f); }
  static V fma(V a, V b, V c) { return _mm512_fmadd_ps(a, b, c); }
  static V mul(V a, V b) { return _mm512_mul_ps(a, b); }
  static V add(V a, V b) { return _mm512_add_ps(a, b); }
  static V sub(V a, V b) { return _mm512_sub_ps(a, b); }
  static V max(V a, V b) { return _mm512_max_ps(a, b); }  // b where a is not greater, as ScalarLanes
  static M gt(V a, V b) { return _mm512_cmp_ps_mask(a, b, _CMP_GT_OQ); }
  static V exp(V a) { return simd::exp512(a); }
  static M excluded(int32_t pos, const int32_t* lo, const int32_t* hi) {
    const __m512i p = _mm512_set1_epi32(pos);
    return static_cast<M>(_mm512_cmpgt_epi32_mask(_mm512_loadu_si512(lo), p) |
                          _mm512_cmpgt_epi32_mask(p, _mm512_loadu_si512(hi)));
  }
  static V select(M m, V if_set, V if_clear) { return _mm512_mask_blend_ps(m, if_clear, if_set); }
};
using NativeLanes = Avx512Lanes;
using TwinLanes = ScalarLanes<Avx512Geometry>;
#elif defined(__AVX2__) && defined(__FMA__) && defined(__F16C__)
using NativeLanes = Avx2Lanes;
using TwinLanes = ScalarLanes<Avx2Geometry>;
#else
using TwinLanes = ScalarLanes<Avx2Geometry>;
using NativeLanes = TwinLanes;
#endif

}  // namespace flashmem::prefill
