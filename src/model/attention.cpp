#include "model/attention.h"

#include <algorithm>
#include <cmath>
#include <cstring>

#include "tensor/kernels.h"
#include "tensor/simd.h"

namespace flashmem {
namespace {

// A head's slice of a K/V row is 128-256 bytes out of every n_kv_heads times that, a stride the
// hardware prefetchers follow poorly at long contexts; asking for the slice 8 positions ahead
// measured +20-30% decode at --context 4096 (16 ahead: no better).
constexpr int64_t kPrefetchRows = 8;

// Every 64-byte line of [p, p + bytes).
void prefetch_head(const uint8_t* p, size_t bytes) {
  const uintptr_t first = reinterpret_cast<uintptr_t>(p) & ~uintptr_t{63};
  for (uintptr_t a = first; a < reinterpret_cast<uintptr_t>(p) + bytes; a += 64)
    __builtin_prefetch(reinterpret_cast<const void*>(a));
}

// Positions of `s` that are <= max_pos.
int64_t span_keys(const KvSpan& s, int64_t max_pos) {
  return std::clamp<int64_t>(max_pos + 1 - s.pos0, 0, s.n);
}

}  // namespace

int64_t attended_keys(std::span<const KvSpan> spans, int64_t max_pos) {
  int64_t n_keys = 0;
  for (const KvSpan& s : spans) n_keys += span_keys(s, max_pos);
  return n_keys;
}

void attend_kv_head_ref(const AttentionShape& shape, std::span<const KvSpan> spans,
                        int64_t kv_head, int64_t max_pos, const float* q, float* out,
                        std::vector<float>& scores, float* probs) {
  const int64_t hd = shape.head_dim, group = shape.n_heads / shape.n_kv_heads;
  const bool f16 = shape.kv_type == DType::F16;
  const size_t elem = f16 ? 2 : 4;
  const size_t row = static_cast<size_t>(shape.n_kv_heads * hd) * elem;  // bytes per position
  const size_t head_offset = static_cast<size_t>(kv_head * hd) * elem;
  const size_t head_bytes = static_cast<size_t>(hd) * elem;
  const float scale = 1.0f / std::sqrt(static_cast<float>(hd));

  const int64_t n_keys = attended_keys(spans, max_pos);
  scores.resize(static_cast<size_t>(n_keys * group));  // [group, n_keys]

  // Pass 1: scores q_g · k_t for every key, each K row read (and for f16 converted) once for the
  // whole group.
  std::vector<float> dots(static_cast<size_t>(group));  // [group] one key's q_g · k_t
  int64_t t = 0;
  for (const KvSpan& s : spans) {
    const int64_t n = span_keys(s, max_pos);
    for (int64_t j = 0; j < n; ++j, ++t) {
      const uint8_t* k = s.k + static_cast<size_t>(j) * row + head_offset;
      if (j + kPrefetchRows < n) prefetch_head(k + kPrefetchRows * row, head_bytes);
      if (f16) {
        dot_f16_f32_heads(reinterpret_cast<const uint16_t*>(k), q, group, hd, dots.data());
      } else {
        for (int64_t g = 0; g < group; ++g)
          dots[static_cast<size_t>(g)] = dot_f32(reinterpret_cast<const float*>(k), q + g * hd, hd);
      }
      for (int64_t g = 0; g < group; ++g)
        scores[static_cast<size_t>(g * n_keys + t)] = dots[static_cast<size_t>(g)] * scale;
    }
  }
  // Softmax per head.
  std::vector<float> inv_sum(static_cast<size_t>(group));
  for (int64_t g = 0; g < group; ++g) {
    float* sg = &scores[static_cast<size_t>(g * n_keys)];
    float max_score = -INFINITY;
    for (int64_t i = 0; i < n_keys; ++i) max_score = std::max(max_score, sg[i]);
    inv_sum[static_cast<size_t>(g)] = 1.0f / exp_shift_sum(sg, n_keys, max_score);
    if (probs != nullptr)
      for (int64_t i = 0; i < n_keys; ++i) probs[g * n_keys + i] = sg[i] * inv_sum[static_cast<size_t>(g)];
  }
  // Pass 2: out_g = Σ_t p_gt v_t, each V row read once for the whole group.
  std::fill(out, out + group * hd, 0.0f);
  t = 0;
  for (const KvSpan& s : spans) {
    const int64_t n = span_keys(s, max_pos);
    for (int64_t j = 0; j < n; ++j, ++t) {
      const uint8_t* v = s.v + static_cast<size_t>(j) * row + head_offset;
      if (j + kPrefetchRows < n) prefetch_head(v + kPrefetchRows * row, head_bytes);
      for (int64_t g = 0; g < group; ++g) {
        const float p = scores[static_cast<size_t>(g * n_keys + t)] * inv_sum[static_cast<size_t>(g)];
        if (f16) {
          axpy_f16(p, reinterpret_cast<const uint16_t*>(v), out + g * hd, hd);
        } else {
          axpy_f32(p, reinterpret_cast<const float*>(v), out + g * hd, hd);
        }
      }
    }
  }
}

#if defined(__AVX2__) && defined(__FMA__) && defined(__F16C__)
namespace {

// Keys per step: one 8-lane vector of scores per query head. Blocks are cut at multiples of 8 of
// the key index t (the position in span order), never at span boundaries, so every (head, key)
// sees the same arithmetic however the positions are split into spans.
constexpr int kBlock = 8;

// One step now reads a K and a V row per key; 16 keys ahead (2 blocks) measured best at
// --context 16384 (8: slower, 32: no better; see docs/BENCHMARKS.md).
constexpr int64_t kBlockPrefetchRows = 16;

inline __m256 load8(const uint16_t* p) { return simd::load_f16x8(p); }
inline __m256 load8(const float* p) { return _mm256_loadu_ps(p); }

// Lane j of the result = the sum of the 8 lanes of a[j]: transposing the 8 accumulators and adding
// the columns does 8 horizontal sums for the shuffles of one.
inline __m256 sum_lanes_8(__m256 (&a)[8]) {
  simd::transpose_8x8(a);
  return _mm256_add_ps(_mm256_add_ps(_mm256_add_ps(a[0], a[1]), _mm256_add_ps(a[2], a[3])),
                       _mm256_add_ps(_mm256_add_ps(a[4], a[5]), _mm256_add_ps(a[6], a[7])));
}

// Lane j = q · k[j] for 8 rows of hd floats (hd % 8 == 0).
inline __m256 dot_rows8(const float* q, const float* const (&k)[kBlock], int64_t hd) {
#if defined(__AVX512F__)
  if (hd % 16 == 0) {
    __m512 acc[kBlock];
    for (__m512& a : acc) a = _mm512_setzero_ps();
    for (int64_t c = 0; c < hd; c += 16) {
      const __m512 qc = _mm512_loadu_ps(q + c);
      for (int j = 0; j < kBlock; ++j) acc[j] = _mm512_fmadd_ps(qc, _mm512_loadu_ps(k[j] + c), acc[j]);
    }
    __m256 half[kBlock];  // [8] acc folded to 8 lanes
    for (int j = 0; j < kBlock; ++j)
      half[j] = _mm256_add_ps(_mm512_castps512_ps256(acc[j]),
                              _mm256_castpd_ps(_mm512_extractf64x4_pd(_mm512_castps_pd(acc[j]), 1)));
    return sum_lanes_8(half);
  }
#endif
  __m256 acc[kBlock];
  for (__m256& a : acc) a = _mm256_setzero_ps();
  for (int64_t c = 0; c < hd; c += 8) {
    const __m256 qc = _mm256_loadu_ps(q + c);
    for (int j = 0; j < kBlock; ++j) acc[j] = _mm256_fmadd_ps(qc, _mm256_loadu_ps(k[j] + c), acc[j]);
  }
  return sum_lanes_8(acc);
}

// acc[g] += Σ_j p[g][j] · v[j] for the 8 rows of a full block, each V chunk loaded (and converted)
// once for all heads. Per element the FMAs run in j order, as in accumulate_rows_tail.
// p: [group, 8], acc: [group, hd].
template <class T>
inline void accumulate_rows8(const T* const (&v)[kBlock], const float* p, int64_t group,
                             int64_t hd, float* acc) {
#if defined(__AVX512F__)
  if (hd % 16 == 0) {
    for (int64_t c = 0; c < hd; c += 16) {
      __m512 vr[kBlock];
      for (int j = 0; j < kBlock; ++j) {
        if constexpr (sizeof(T) == 2) {
          vr[j] = _mm512_cvtph_ps(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(v[j] + c)));
        } else {
          vr[j] = _mm512_loadu_ps(v[j] + c);
        }
      }
      for (int64_t g = 0; g < group; ++g) {
        __m512 a = _mm512_loadu_ps(acc + g * hd + c);
        for (int j = 0; j < kBlock; ++j) a = _mm512_fmadd_ps(_mm512_set1_ps(p[g * kBlock + j]), vr[j], a);
        _mm512_storeu_ps(acc + g * hd + c, a);
      }
    }
    return;
  }
#endif
  for (int64_t c = 0; c < hd; c += 8) {
    __m256 vr[kBlock];
    for (int j = 0; j < kBlock; ++j) vr[j] = load8(v[j] + c);
    for (int64_t g = 0; g < group; ++g) {
      __m256 a = _mm256_loadu_ps(acc + g * hd + c);
      for (int j = 0; j < kBlock; ++j) a = _mm256_fmadd_ps(_mm256_broadcast_ss(p + g * kBlock + j), vr[j], a);
      _mm256_storeu_ps(acc + g * hd + c, a);
    }
  }
}

// The last, partial block (nb < 8 rows): same per-element FMA sequence, padding rows not read.
template <class T>
void accumulate_rows_tail(const T* const (&v)[kBlock], int nb, const float* p, int64_t group,
                          int64_t hd, float* acc) {
  for (int64_t c = 0; c < hd; c += 8)
    for (int64_t g = 0; g < group; ++g) {
      __m256 a = _mm256_loadu_ps(acc + g * hd + c);
      for (int j = 0; j < nb; ++j) a = _mm256_fmadd_ps(_mm256_broadcast_ss(p + g * kBlock + j), load8(v[j] + c), a);
      _mm256_storeu_ps(acc + g * hd + c, a);
    }
}

// One-pass (online-softmax) attention state of the `group` heads of one kv head. Per head g it
// keeps the running max m_g of the scores seen, the lane-wise running sum of exp(s - m_g) and the
// unnormalized output Σ exp(s_t - m_g) v_t; when a block raises m_g, sum and output are first
// multiplied by exp(m_old - m_new). Scores are never stored in full (unless probs are wanted).
template <class T>
class BlockedAttention {
 public:
  // scratch: resized to hold the state; probs: nullptr or [group, n_keys], see attend_kv_head.
  BlockedAttention(int64_t group, int64_t hd, const float* q, int64_t n_keys, float* probs,
                   std::vector<float>& scratch)
      : group_(group), hd_(hd), n_keys_(n_keys), scale_(1.0f / std::sqrt(static_cast<float>(hd))),
        q_(q), probs_(probs) {
    // acc [group, hd] | k_f32 [8, hd] | p [group, 8] | sum [group, 8] | max [group]
    scratch.assign(static_cast<size_t>(group * hd + kBlock * hd + 2 * group * kBlock + group), 0.0f);
    acc_ = scratch.data();
    k_f32_ = acc_ + group * hd;
    p_ = k_f32_ + kBlock * hd;
    sum_ = p_ + group * kBlock;
    max_ = sum_ + group * kBlock;
    std::fill(max_, max_ + group, -INFINITY);
  }

  // Keys t0 .. t0 + nb - 1 (nb <= 8): K rows k[j], V rows v[j] (this kv head's slices).
  void block(const T* const (&k)[kBlock], const T* const (&v)[kBlock], int nb, int64_t t0) {
    const float* kf[kBlock];  // [8] K rows as f32; padding rows repeat row 0 (scores masked)
    for (int j = 0; j < nb; ++j) {
      if constexpr (sizeof(T) == 2) {
        float* dst = k_f32_ + j * hd_;
        for (int64_t c = 0; c < hd_; c += 8) _mm256_storeu_ps(dst + c, load8(k[j] + c));
        kf[j] = dst;
      } else {
        kf[j] = k[j];
      }
    }
    for (int j = nb; j < kBlock; ++j) kf[j] = kf[0];
    const __m256i valid = simd::lane_mask(nb);
    for (int64_t g = 0; g < group_; ++g) {
      __m256 s = _mm256_mul_ps(dot_rows8(q_ + g * hd_, kf, hd_), _mm256_set1_ps(scale_));
      s = _mm256_blendv_ps(_mm256_set1_ps(-INFINITY), s, _mm256_castsi256_ps(valid));
      if (probs_ != nullptr) _mm256_maskstore_ps(probs_ + g * n_keys_ + t0, valid, s);
      __m256 sum = _mm256_loadu_ps(sum_ + g * kBlock);
      const float block_max = simd::hmax256(s);
      if (block_max > max_[g]) {
        const float rescale = std::exp(max_[g] - block_max);  // 0 on the first block
        max_[g] = block_max;
        const __m256 r = _mm256_set1_ps(rescale);
        sum = _mm256_mul_ps(sum, r);
        float* acc = acc_ + g * hd_;
        for (int64_t c = 0; c < hd_; c += 8) _mm256_storeu_ps(acc + c, _mm256_mul_ps(_mm256_loadu_ps(acc + c), r));
      }
      const __m256 e = simd::exp256(_mm256_sub_ps(s, _mm256_set1_ps(max_[g])));  // masked lanes: 0
      _mm256_storeu_ps(sum_ + g * kBlock, _mm256_add_ps(sum, e));
      _mm256_storeu_ps(p_ + g * kBlock, e);
    }
    if (nb == kBlock) {
      accumulate_rows8(v, p_, group_, hd_, acc_);
    } else {
      accumulate_rows_tail(v, nb, p_, group_, hd_, acc_);
    }
  }

  // out [group, hd] = acc / sum; probs (if wanted) = exp(s - max) normalized per head.
  void finish(float* out) const {
    for (int64_t g = 0; g < group_; ++g) {
      const __m256 inv = _mm256_set1_ps(1.0f / simd::hsum256(_mm256_loadu_ps(sum_ + g * kBlock)));
      for (int64_t c = 0; c < hd_; c += 8)
        _mm256_storeu_ps(out + g * hd_ + c, _mm256_mul_ps(_mm256_loadu_ps(acc_ + g * hd_ + c), inv));
      if (probs_ == nullptr) continue;
      float* pg = probs_ + g * n_keys_;
      const float inv_sum = 1.0f / exp_shift_sum(pg, n_keys_, max_[g]);
      for (int64_t t = 0; t < n_keys_; ++t) pg[t] *= inv_sum;
    }
  }

 private:
  int64_t group_, hd_, n_keys_;
  float scale_;
  const float* q_;  // [group, hd]
  float* probs_;    // [group, n_keys] or nullptr
  float* acc_;      // [group, hd] unnormalized outputs
  float* k_f32_;    // [8, hd] the block's f16 K rows converted once for all heads
  float* p_;        // [group, 8] the block's exp(s - max)
  float* sum_;      // [group, 8] lane-wise running Σ exp(s - max)
  float* max_;      // [group] running max score
};

template <class T>
void attend_blocked(const AttentionShape& shape, std::span<const KvSpan> spans, int64_t kv_head,
                    int64_t max_pos, const float* q, float* out, std::vector<float>& scratch,
                    float* probs) {
  const int64_t hd = shape.head_dim, group = shape.n_heads / shape.n_kv_heads;
  const int64_t row = shape.n_kv_heads * hd;  // elements per position
  const int64_t n_keys = attended_keys(spans, max_pos);
  if (n_keys == 0) {
    std::fill(out, out + group * hd, 0.0f);
    return;
  }
  BlockedAttention<T> state(group, hd, q, n_keys, probs, scratch);
  auto rows = [&](const uint8_t* base) { return reinterpret_cast<const T*>(base) + kv_head * hd; };

  // Prefetch cursor (span ps, row pj), kBlockPrefetchRows keys ahead of the one being gathered,
  // crossing span boundaries so the first rows of the next page are already on their way.
  size_t ps = 0;
  int64_t pj = -1;
  auto advance = [&] {
    ++pj;
    while (ps < spans.size() && pj >= span_keys(spans[ps], max_pos)) {
      ++ps;
      pj = 0;
    }
  };
  for (int64_t i = 0; i <= kBlockPrefetchRows; ++i) advance();
  const size_t head_bytes = static_cast<size_t>(hd) * sizeof(T);

  const T* k[kBlock] = {};
  const T* v[kBlock] = {};
  int nb = 0;
  int64_t t0 = 0;
  for (const KvSpan& s : spans) {
    const int64_t n = span_keys(s, max_pos);
    if (n == 0) continue;
    const T *k0 = rows(s.k), *v0 = rows(s.v);
    for (int64_t j = 0; j < n; ++j) {
      if (ps < spans.size()) {
        prefetch_head(reinterpret_cast<const uint8_t*>(rows(spans[ps].k) + pj * row), head_bytes);
        prefetch_head(reinterpret_cast<const uint8_t*>(rows(spans[ps].v) + pj * row), head_bytes);
        advance();
      }
      k[nb] = k0 + j * row;
      v[nb] = v0 + j * row;
      if (++nb == kBlock) {
        state.block(k, v, nb, t0);
        t0 += nb;
        nb = 0;
      }
    }
  }
  if (nb > 0) state.block(k, v, nb, t0);
  state.finish(out);
}

}  // namespace

void attend_kv_head(const AttentionShape& shape, std::span<const KvSpan> spans, int64_t kv_head,
                    int64_t max_pos, const float* q, float* out, std::vector<float>& scores,
                    float* probs) {
  if (shape.head_dim % 8 == 0) {
    if (shape.kv_type == DType::F16) {
      attend_blocked<uint16_t>(shape, spans, kv_head, max_pos, q, out, scores, probs);
    } else {
      attend_blocked<float>(shape, spans, kv_head, max_pos, q, out, scores, probs);
    }
    return;
  }
  attend_kv_head_ref(shape, spans, kv_head, max_pos, q, out, scores, probs);
}

#else  // no SIMD: the reference is the implementation.

void attend_kv_head(const AttentionShape& shape, std::span<const KvSpan> spans, int64_t kv_head,
                    int64_t max_pos, const float* q, float* out, std::vector<float>& scores,
                    float* probs) {
  attend_kv_head_ref(shape, spans, kv_head, max_pos, q, out, scores, probs);
}

#endif

}  // namespace flashmem
