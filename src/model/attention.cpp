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

namespace {

// Keys per kernel step: one 8-lane vector of scores per query head.
constexpr int kBlock = 8;

// Whole K and V rows are prefetched this many keys ahead (8 keys = 4 KiB of K and of V at kv_dim
// 256, f16). Chunks read rows front to back, which the hardware prefetchers already follow: on the
// contiguous cache 0, 8 and 16 keys ahead measured the same within noise (bench_attention and
// `flashmem bench --context 16384`); it is kept for the jumps between the pages of paged KV.
constexpr int64_t kPrefetchKeys = 8;

// Key `j` of span `s` among the positions <= max_pos; next() steps over spans (skipping empty
// ones) in key-index order.
struct KeyCursor {
  std::span<const KvSpan> spans;
  int64_t max_pos;
  size_t s = 0;
  int64_t j = 0;

  // Moves j forward over whole spans until it lies inside span s (or s == spans.size()).
  void settle() {
    while (s < spans.size() && j >= span_keys(spans[s], max_pos)) {
      j -= span_keys(spans[s], max_pos);
      ++s;
    }
  }
  void next() {
    ++j;
    settle();
  }
  const uint8_t* k(size_t row_bytes) const { return spans[s].k + static_cast<size_t>(j) * row_bytes; }
  const uint8_t* v(size_t row_bytes) const { return spans[s].v + static_cast<size_t>(j) * row_bytes; }
};

// Calls block(k, v, nb, t0) for the keys [t_begin, t_end) in blocks of 8 key indices starting at
// t0 (t_begin a multiple of 8): k[j], v[j] = the start of key t0 + j's whole K and V rows (all
// kv heads), j < nb; the last block may be shorter. Blocks gather rows across spans.
template <class Block>
void for_each_block(std::span<const KvSpan> spans, int64_t max_pos, int64_t t_begin, int64_t t_end,
                    size_t row_bytes, Block& block) {
  KeyCursor at{spans, max_pos, 0, t_begin};
  at.settle();
  KeyCursor ahead = at;  // kPrefetchKeys keys ahead of `at`, within the chunk
  for (int64_t i = 0; i < kPrefetchKeys && t_begin + i < t_end; ++i) ahead.next();
  const uint8_t* k[kBlock] = {};
  const uint8_t* v[kBlock] = {};
  int nb = 0;
  int64_t t0 = t_begin;
  for (int64_t t = t_begin; t < t_end; ++t) {
    if (t + kPrefetchKeys < t_end) {
      prefetch_head(ahead.k(row_bytes), row_bytes);
      prefetch_head(ahead.v(row_bytes), row_bytes);
      ahead.next();
    }
    k[nb] = at.k(row_bytes);
    v[nb] = at.v(row_bytes);
    at.next();
    if (++nb == kBlock) {
      block(k, v, nb, t0);
      t0 += nb;
      nb = 0;
    }
  }
  if (nb > 0) block(k, v, nb, t0);
}

// The chunk's online-softmax state, one key at a time: builds without AVX2 and head_dim % 8 != 0.
// Per head h: running max m_h, Σ exp(s - m_h) and Σ exp(s - m_h) v, both multiplied by
// exp(m_old - m_new) when a key raises m_h.
class ScalarChunk {
 public:
  ScalarChunk(const AttentionShape& shape, const float* q, float* scores, int64_t n_keys,
              std::vector<float>& scratch)
      : n_heads_(shape.n_heads), group_(shape.n_heads / shape.n_kv_heads), hd_(shape.head_dim),
        n_keys_(n_keys), f16_(shape.kv_type == DType::F16),
        scale_(1.0f / std::sqrt(static_cast<float>(shape.head_dim))), q_(q), scores_(scores) {
    // acc [n_heads, hd] | max [n_heads] | sum [n_heads]
    scratch.assign(static_cast<size_t>(n_heads_ * (hd_ + 2)), 0.0f);
    acc_ = scratch.data();
    max_ = acc_ + n_heads_ * hd_;
    sum_ = max_ + n_heads_;
    std::fill(max_, sum_, -INFINITY);
  }

  void operator()(const uint8_t* const (&k)[kBlock], const uint8_t* const (&v)[kBlock], int nb,
                  int64_t t0) {
    const size_t head_bytes = static_cast<size_t>(hd_) * (f16_ ? 2 : 4);
    for (int j = 0; j < nb; ++j)
      for (int64_t h = 0; h < n_heads_; ++h) {
        const uint8_t* kr = k[j] + static_cast<size_t>(h / group_) * head_bytes;
        const uint8_t* vr = v[j] + static_cast<size_t>(h / group_) * head_bytes;
        float* acc = acc_ + h * hd_;
        const float s = scale_ * (f16_ ? dot_f16_f32(reinterpret_cast<const uint16_t*>(kr), q_ + h * hd_, hd_)
                                       : dot_f32(reinterpret_cast<const float*>(kr), q_ + h * hd_, hd_));
        if (scores_ != nullptr) scores_[h * n_keys_ + t0 + j] = s;
        if (s > max_[h]) {
          const float rescale = std::exp(max_[h] - s);  // 0 on the first key
          max_[h] = s;
          sum_[h] *= rescale;
          for (int64_t c = 0; c < hd_; ++c) acc[c] *= rescale;
        }
        const float p = std::exp(s - max_[h]);
        sum_[h] += p;
        if (f16_) {
          axpy_f16(p, reinterpret_cast<const uint16_t*>(vr), acc, hd_);
        } else {
          axpy_f32(p, reinterpret_cast<const float*>(vr), acc, hd_);
        }
      }
  }

  void finish(float* partial) const {
    for (int64_t h = 0; h < n_heads_; ++h) {
      float* dst = partial + h * (hd_ + 2);
      std::memcpy(dst, acc_ + h * hd_, static_cast<size_t>(hd_) * sizeof(float));
      dst[hd_] = max_[h];
      dst[hd_ + 1] = sum_[h];
    }
  }

 private:
  int64_t n_heads_, group_, hd_, n_keys_;
  bool f16_;
  float scale_;
  const float* q_;  // [n_heads, hd]
  float* scores_;   // [n_heads, n_keys] or nullptr
  float* acc_;      // [n_heads, hd]
  float* max_;      // [n_heads]
  float* sum_;      // [n_heads]
};

#if defined(__AVX2__) && defined(__FMA__) && defined(__F16C__)

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
// once for all heads of the group. Per element the FMAs run in j order, as in
// accumulate_rows_tail. p: [group, 8], acc: [group, hd].
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

// The chunk's online-softmax state, 8 keys per step (T: the cache element, uint16_t = f16).
// Per head h it keeps the running max m_h, the lane-wise running sum of exp(s - m_h) and
// Σ exp(s - m_h) v; a block that raises m_h first multiplies both by exp(m_old - m_new). Each K
// block is converted to f32 once and each V chunk once for the group of heads sharing them.
template <class T>
class BlockedChunk {
 public:
  BlockedChunk(const AttentionShape& shape, const float* q, float* scores, int64_t n_keys,
               std::vector<float>& scratch)
      : n_kv_heads_(shape.n_kv_heads), group_(shape.n_heads / shape.n_kv_heads),
        hd_(shape.head_dim), n_keys_(n_keys),
        scale_(1.0f / std::sqrt(static_cast<float>(shape.head_dim))), q_(q), scores_(scores) {
    const int64_t n_heads = shape.n_heads;
    // acc [n_heads, hd] | k_f32 [8, hd] | p [group, 8] | sum [n_heads, 8] | max [n_heads]
    scratch.assign(static_cast<size_t>(n_heads * hd_ + kBlock * hd_ + group_ * kBlock +
                                       n_heads * kBlock + n_heads), 0.0f);
    acc_ = scratch.data();
    k_f32_ = acc_ + n_heads * hd_;
    p_ = k_f32_ + kBlock * hd_;
    sum_ = p_ + group_ * kBlock;
    max_ = sum_ + n_heads * kBlock;
    std::fill(max_, max_ + n_heads, -INFINITY);
  }

  void operator()(const uint8_t* const (&k)[kBlock], const uint8_t* const (&v)[kBlock], int nb,
                  int64_t t0) {
    for (int64_t kvh = 0; kvh < n_kv_heads_; ++kvh) {
      const T* kr[kBlock];  // this kv head's slices; padding rows repeat row 0 (never used)
      const T* vr[kBlock];
      for (int j = 0; j < kBlock; ++j) {
        kr[j] = reinterpret_cast<const T*>(k[j < nb ? j : 0]) + kvh * hd_;
        vr[j] = reinterpret_cast<const T*>(v[j < nb ? j : 0]) + kvh * hd_;
      }
      head_group(kvh, kr, vr, nb, t0);
    }
  }

  void finish(float* partial) const {
    for (int64_t h = 0; h < n_kv_heads_ * group_; ++h) {
      float* dst = partial + h * (hd_ + 2);
      std::memcpy(dst, acc_ + h * hd_, static_cast<size_t>(hd_) * sizeof(float));
      dst[hd_] = max_[h];
      dst[hd_ + 1] = simd::hsum256(_mm256_loadu_ps(sum_ + h * kBlock));
    }
  }

 private:
  // Keys t0 .. t0 + nb - 1 for the query heads of kv head `kvh`.
  void head_group(int64_t kvh, const T* const (&k)[kBlock], const T* const (&v)[kBlock], int nb,
                  int64_t t0) {
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
      const int64_t h = kvh * group_ + g;
      __m256 s = _mm256_mul_ps(dot_rows8(q_ + h * hd_, kf, hd_), _mm256_set1_ps(scale_));
      s = _mm256_blendv_ps(_mm256_set1_ps(-INFINITY), s, _mm256_castsi256_ps(valid));
      if (scores_ != nullptr) _mm256_maskstore_ps(scores_ + h * n_keys_ + t0, valid, s);
      __m256 sum = _mm256_loadu_ps(sum_ + h * kBlock);
      const float block_max = simd::hmax256(s);
      if (block_max > max_[h]) {
        const float rescale = std::exp(max_[h] - block_max);  // 0 on the first block
        max_[h] = block_max;
        const __m256 r = _mm256_set1_ps(rescale);
        sum = _mm256_mul_ps(sum, r);
        float* acc = acc_ + h * hd_;
        for (int64_t c = 0; c < hd_; c += 8) _mm256_storeu_ps(acc + c, _mm256_mul_ps(_mm256_loadu_ps(acc + c), r));
      }
      const __m256 e = simd::exp256(_mm256_sub_ps(s, _mm256_set1_ps(max_[h])));  // masked lanes: 0
      _mm256_storeu_ps(sum_ + h * kBlock, _mm256_add_ps(sum, e));
      _mm256_storeu_ps(p_ + g * kBlock, e);
    }
    float* acc = acc_ + kvh * group_ * hd_;  // the group's heads are consecutive
    if (nb == kBlock) {
      accumulate_rows8(v, p_, group_, hd_, acc);
    } else {
      accumulate_rows_tail(v, nb, p_, group_, hd_, acc);
    }
  }

  int64_t n_kv_heads_, group_, hd_, n_keys_;
  float scale_;
  const float* q_;  // [n_heads, hd]
  float* scores_;   // [n_heads, n_keys] or nullptr
  float* acc_;      // [n_heads, hd] Σ exp(s - max) v
  float* k_f32_;    // [8, hd] one kv head's K block converted once for its group
  float* p_;        // [group, 8] the block's exp(s - max) for the current group
  float* sum_;      // [n_heads, 8] lane-wise running Σ exp(s - max)
  float* max_;      // [n_heads] running max score
};

#endif

template <class State>
void run_chunk(const AttentionShape& shape, std::span<const KvSpan> spans, int64_t max_pos,
               int64_t t_begin, int64_t t_end, size_t row_bytes, const float* q, float* partial,
               std::vector<float>& scratch, float* scores, int64_t n_keys) {
  State state(shape, q, scores, n_keys, scratch);
  for_each_block(spans, max_pos, t_begin, t_end, row_bytes, state);
  state.finish(partial);
}

}  // namespace

void attend_chunk(const AttentionShape& shape, std::span<const KvSpan> spans, int64_t max_pos,
                  int64_t chunk, const float* q, float* partial, std::vector<float>& scratch,
                  float* scores) {
  const int64_t n_keys = attended_keys(spans, max_pos);
  const int64_t t_begin = chunk * kAttentionChunkKeys;
  const int64_t t_end = std::min(n_keys, t_begin + kAttentionChunkKeys);
  const bool f16 = shape.kv_type == DType::F16;
  const size_t row_bytes = static_cast<size_t>(shape.n_kv_heads * shape.head_dim) * (f16 ? 2 : 4);
#if defined(__AVX2__) && defined(__FMA__) && defined(__F16C__)
  if (shape.head_dim % 8 == 0) {
    if (f16) {
      run_chunk<BlockedChunk<uint16_t>>(shape, spans, max_pos, t_begin, t_end, row_bytes, q, partial,
                                        scratch, scores, n_keys);
    } else {
      run_chunk<BlockedChunk<float>>(shape, spans, max_pos, t_begin, t_end, row_bytes, q, partial,
                                     scratch, scores, n_keys);
    }
    return;
  }
#endif
  run_chunk<ScalarChunk>(shape, spans, max_pos, t_begin, t_end, row_bytes, q, partial, scratch,
                         scores, n_keys);
}

void attend_merge(const AttentionShape& shape, const float* partials, int64_t n_chunks, float* out,
                  float* probs, int64_t n_keys) {
  const int64_t hd = shape.head_dim, stride = attention_partial_floats(shape);
  for (int64_t h = 0; h < shape.n_heads; ++h) {
    float* o = out + h * hd;
    std::fill(o, o + hd, 0.0f);
    if (n_chunks == 0) continue;
    auto state = [&](int64_t c) { return partials + c * stride + h * (hd + 2); };  // [hd + 2]
    float max_score = -INFINITY;
    for (int64_t c = 0; c < n_chunks; ++c) max_score = std::max(max_score, state(c)[hd]);
    float sum = 0;
    for (int64_t c = 0; c < n_chunks; ++c) {
      const float w = std::exp(state(c)[hd] - max_score);  // exactly 1 for the max's chunk
      sum += w * state(c)[hd + 1];
      axpy_f32(w, state(c), o, hd);
    }
    const float inv_sum = 1.0f / sum;
    for (int64_t i = 0; i < hd; ++i) o[i] *= inv_sum;
    if (probs == nullptr) continue;
    float* pg = probs + h * n_keys;
    const float inv_p = 1.0f / exp_shift_sum(pg, n_keys, max_score);
    for (int64_t t = 0; t < n_keys; ++t) pg[t] *= inv_p;
  }
}

void attend_token(const AttentionShape& shape, std::span<const KvSpan> spans, int64_t max_pos,
                  const float* q, float* out, std::vector<float>& scratch, float* probs) {
  const int64_t n_keys = attended_keys(spans, max_pos), n_chunks = attention_chunks(n_keys);
  const int64_t stride = attention_partial_floats(shape);
  std::vector<float> partials(static_cast<size_t>(n_chunks * stride));  // [n_chunks, stride]
  for (int64_t c = 0; c < n_chunks; ++c)
    attend_chunk(shape, spans, max_pos, c, q, &partials[static_cast<size_t>(c * stride)], scratch, probs);
  attend_merge(shape, partials.data(), n_chunks, out, probs, n_keys);
}

}  // namespace flashmem
