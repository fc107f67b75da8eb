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

// A block-quantized (q8_0) slice of wide.size() values as f32, in `wide`.
const float* dequantized(DType type, const uint8_t* slice, std::vector<float>& wide) {
  dequantize_row(type, slice, wide.data(), static_cast<int64_t>(wide.size()));
  return wide.data();
}

// Rows of `s` before position min_pos (skipped), and its positions in [min_pos, max_pos].
int64_t span_skip(const KvSpan& s, int64_t min_pos) {
  return std::clamp<int64_t>(min_pos - s.pos0, 0, s.n);
}
int64_t span_keys(const KvSpan& s, int64_t min_pos, int64_t max_pos) {
  return std::max<int64_t>(0, std::clamp<int64_t>(max_pos + 1 - s.pos0, 0, s.n) - span_skip(s, min_pos));
}

float score_scale(const AttentionShape& shape) {
  return shape.scale > 0 ? shape.scale : 1.0f / std::sqrt(static_cast<float>(shape.head_dim));
}

// Soft-capping of n scores in place (softcap > 0).
void soft_cap(float* scores, int64_t n, float softcap) {
  for (int64_t i = 0; i < n; ++i) scores[i] = softcap * std::tanh(scores[i] / softcap);
}

}  // namespace

int64_t attended_keys(std::span<const KvSpan> spans, int64_t max_pos, int64_t min_pos) {
  int64_t n_keys = 0;
  for (const KvSpan& s : spans) n_keys += span_keys(s, min_pos, max_pos);
  return n_keys;
}

void attend_kv_head_ref(const AttentionShape& shape, std::span<const KvSpan> spans,
                        int64_t kv_head, int64_t max_pos, const float* q, float* out,
                        std::vector<float>& scores, float* probs) {
  const int64_t hd = shape.head_dim, vd = value_dim(shape), group = shape.n_heads / shape.n_kv_heads;
  const DType type = shape.kv_type;
  const size_t head_bytes = row_bytes(type, hd);      // one kv head's slice of a row
  const size_t row = shape.n_kv_heads * head_bytes;   // bytes per position
  const size_t head_offset = static_cast<size_t>(kv_head) * head_bytes;
  const float scale = score_scale(shape);
  std::vector<float> wide(static_cast<size_t>(hd));   // [hd] a q8_0 slice dequantized

  const int64_t min_pos = first_attended_pos(shape, max_pos);
  const int64_t n_keys = attended_keys(spans, max_pos, min_pos);
  scores.resize(static_cast<size_t>(n_keys * group));  // [group, n_keys]

  // Pass 1: scores q_g · k_t for every key, each K row read (and for f16 converted) once for the
  // whole group.
  std::vector<float> dots(static_cast<size_t>(group));  // [group] one key's q_g · k_t
  int64_t t = 0;
  for (const KvSpan& s : spans) {
    const int64_t n = span_keys(s, min_pos, max_pos);
    const uint8_t* k0 = s.k + static_cast<size_t>(span_skip(s, min_pos)) * row;
    for (int64_t j = 0; j < n; ++j, ++t) {
      const uint8_t* k = k0 + static_cast<size_t>(j) * row + head_offset;
      if (j + kPrefetchRows < n) prefetch_head(k + kPrefetchRows * row, head_bytes);
      if (type == DType::F16) {
        dot_f16_f32_heads(reinterpret_cast<const uint16_t*>(k), q, group, hd, dots.data());
      } else {
        const float* kf = reinterpret_cast<const float*>(k);
        if (type != DType::F32) kf = dequantized(type, k, wide);
        for (int64_t g = 0; g < group; ++g) dots[static_cast<size_t>(g)] = dot_f32(kf, q + g * hd, hd);
      }
      for (int64_t g = 0; g < group; ++g) {
        float& score = scores[static_cast<size_t>(g * n_keys + t)];
        score = dots[static_cast<size_t>(g)] * scale;
        if (shape.softcap > 0) soft_cap(&score, 1, shape.softcap);
      }
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
  std::fill(out, out + group * vd, 0.0f);
  t = 0;
  for (const KvSpan& s : spans) {
    const int64_t n = span_keys(s, min_pos, max_pos);
    const uint8_t* v0 = s.v + static_cast<size_t>(span_skip(s, min_pos)) * row;
    for (int64_t j = 0; j < n; ++j, ++t) {
      const uint8_t* v = v0 + static_cast<size_t>(j) * row + head_offset;
      if (j + kPrefetchRows < n) prefetch_head(v + kPrefetchRows * row, head_bytes);
      const float* vf = reinterpret_cast<const float*>(v);
      if (type != DType::F32 && type != DType::F16) vf = dequantized(type, v, wide);
      for (int64_t g = 0; g < group; ++g) {
        const float p = scores[static_cast<size_t>(g * n_keys + t)] * inv_sum[static_cast<size_t>(g)];
        if (type == DType::F16) {
          axpy_f16(p, reinterpret_cast<const uint16_t*>(v), out + g * vd, vd);
        } else {
          axpy_f32(p, vf, out + g * vd, vd);
        }
      }
    }
  }
}

namespace {

// Keys per kernel step (a tile): one vector of 8 scores per query head, one max / rescale / exp
// step and one load and store of each head's accumulator per tile. The tile's whole K and V rows
// (8 KiB for the 125M model) stay in L1 while every kv head's slice of them is read. Tiles of 16
// and 32 keys amortise the softmax step further but measured 10-25% slower decode attention
// (`flashmem bench --context 32768 --policy lsa`, and --context 16384 without a policy): their
// rows no longer fit in L1 next to the rest.
constexpr int kTileKeys = 8;

// Key `j` of span `s` among the positions in [min_pos, max_pos]; next() steps over spans
// (skipping empty ones) in key-index order.
struct KeyCursor {
  std::span<const KvSpan> spans;
  int64_t min_pos, max_pos;
  size_t s = 0;
  int64_t j = 0;

  // Moves j forward over whole spans until it lies inside span s (or s == spans.size()).
  void settle() {
    while (s < spans.size() && j >= span_keys(spans[s], min_pos, max_pos)) {
      j -= span_keys(spans[s], min_pos, max_pos);
      ++s;
    }
  }
  void next() {
    ++j;
    settle();
  }
  size_t row(size_t row_bytes) const {
    return static_cast<size_t>(span_skip(spans[s], min_pos) + j) * row_bytes;
  }
  const uint8_t* k(size_t row_bytes) const { return spans[s].k + row(row_bytes); }
  const uint8_t* v(size_t row_bytes) const { return spans[s].v + row(row_bytes); }
};

// Up to kTileKeys consecutive key indices t0 .. t0 + n - 1: k[j], v[j] = the start of key
// t0 + j's whole K and V rows (all kv heads), gathered across spans.
struct Tile {
  const uint8_t* k[kTileKeys] = {};
  const uint8_t* v[kTileKeys] = {};
  int n = 0;
  int64_t t0 = 0;
};

// Whole K and V rows are prefetched this many keys ahead of the key being gathered (8 keys = 4 KiB
// of K and of V at kv_dim 256, f16). The hardware prefetchers follow rows read front to back, but
// the jumps between the pages of paged KV need it. Measured with bench_attention (DRAM-resident
// history, one thread, 32-key tiles): prefetching the whole next tile instead, into L1 or L2, or
// only the kv head slices the next tile's step reads, all ran 10-25% slower.
constexpr int64_t kPrefetchKeys = 8;

// Calls state(tile) for the keys [t_begin, t_end) in tiles of kTileKeys key indices (t_begin a
// multiple of kTileKeys; the last tile may be shorter).
template <class State>
void for_each_tile(std::span<const KvSpan> spans, int64_t min_pos, int64_t max_pos, int64_t t_begin,
                   int64_t t_end, size_t row_bytes, State& state) {
  KeyCursor at{spans, min_pos, max_pos, 0, t_begin};
  at.settle();
  KeyCursor ahead = at;  // kPrefetchKeys keys ahead of `at`, within the chunk
  for (int64_t i = 0; i < kPrefetchKeys && t_begin + i < t_end; ++i) ahead.next();
  Tile tile;
  for (int64_t t = t_begin; t < t_end; ++t) {
    if (t + kPrefetchKeys < t_end) {
      prefetch_head(ahead.k(row_bytes), row_bytes);
      prefetch_head(ahead.v(row_bytes), row_bytes);
      ahead.next();
    }
    if (tile.n == 0) tile.t0 = t;
    tile.k[tile.n] = at.k(row_bytes);
    tile.v[tile.n] = at.v(row_bytes);
    at.next();
    if (++tile.n == kTileKeys || t + 1 == t_end) {
      state(tile);
      tile.n = 0;
    }
  }
}

// The chunk's online-softmax state, one key at a time: builds without AVX2 and head_dim % 8 != 0.
// Per head h: running max m_h, Σ exp(s - m_h) and Σ exp(s - m_h) v, both multiplied by
// exp(m_old - m_new) when a key raises m_h.
class ScalarChunk {
 public:
  ScalarChunk(const AttentionShape& shape, const float* q, float* scores, int64_t n_keys,
              std::vector<float>& scratch)
      : n_heads_(shape.n_heads), group_(shape.n_heads / shape.n_kv_heads), hd_(shape.head_dim),
        vd_(value_dim(shape)), n_keys_(n_keys), type_(shape.kv_type),
        scale_(score_scale(shape)), softcap_(shape.softcap), q_(q), scores_(scores),
        k_wide_(dtype_info(type_).block_elems > 1 ? static_cast<size_t>(hd_) : 0),
        v_wide_(k_wide_.size()) {
    // acc [n_heads, vd] | max [n_heads] | sum [n_heads]
    scratch.assign(static_cast<size_t>(n_heads_ * (vd_ + 2)), 0.0f);
    acc_ = scratch.data();
    max_ = acc_ + n_heads_ * vd_;
    sum_ = max_ + n_heads_;
    std::fill(max_, sum_, -INFINITY);
  }

  void operator()(const Tile& tile) {
    const uint8_t* const (&k)[kTileKeys] = tile.k;
    const uint8_t* const (&v)[kTileKeys] = tile.v;
    const int nb = tile.n;
    const int64_t t0 = tile.t0;
    const size_t head_bytes = row_bytes(type_, hd_);
    const bool f16 = type_ == DType::F16, f32 = type_ == DType::F32;
    for (int j = 0; j < nb; ++j)
      for (int64_t h = 0; h < n_heads_; ++h) {
        const uint8_t* kr = k[j] + static_cast<size_t>(h / group_) * head_bytes;
        const uint8_t* vr = v[j] + static_cast<size_t>(h / group_) * head_bytes;
        float* acc = acc_ + h * vd_;
        const float* kf = f32 ? reinterpret_cast<const float*>(kr) : nullptr;
        if (!f16 && !f32) kf = dequantized(type_, kr, k_wide_);
        float s = scale_ * (f16 ? dot_f16_f32(reinterpret_cast<const uint16_t*>(kr), q_ + h * hd_, hd_)
                                : dot_f32(kf, q_ + h * hd_, hd_));
        if (softcap_ > 0) soft_cap(&s, 1, softcap_);
        if (scores_ != nullptr) scores_[h * n_keys_ + t0 + j] = s;
        if (s > max_[h]) {
          const float rescale = std::exp(max_[h] - s);  // 0 on the first key
          max_[h] = s;
          sum_[h] *= rescale;
          for (int64_t c = 0; c < vd_; ++c) acc[c] *= rescale;
        }
        const float p = std::exp(s - max_[h]);
        sum_[h] += p;
        if (f16) {
          axpy_f16(p, reinterpret_cast<const uint16_t*>(vr), acc, vd_);
        } else {
          axpy_f32(p, f32 ? reinterpret_cast<const float*>(vr) : dequantized(type_, vr, v_wide_), acc, vd_);
        }
      }
  }

  void finish(float* partial) const {
    for (int64_t h = 0; h < n_heads_; ++h) {
      float* dst = partial + h * (vd_ + 2);
      std::memcpy(dst, acc_ + h * vd_, static_cast<size_t>(vd_) * sizeof(float));
      dst[vd_] = max_[h];
      dst[vd_ + 1] = sum_[h];
    }
  }

 private:
  int64_t n_heads_, group_, hd_, vd_, n_keys_;
  DType type_;
  float scale_, softcap_;
  const float* q_;  // [n_heads, hd]
  float* scores_;   // [n_heads, n_keys] or nullptr
  std::vector<float> k_wide_, v_wide_;  // [hd] each: a q8_0 slice dequantized (else empty)
  float* acc_;      // [n_heads, vd]
  float* max_;      // [n_heads]
  float* sum_;      // [n_heads]
};

#if defined(__AVX2__) && defined(__FMA__) && defined(__F16C__)

// How the kernel reads one kv head's slice of a K or V row in the cache type: value c of the
// slice is load8(slice, c)[0] · scale(slice, c), lanes c .. c + 7 (c a multiple of 8) at once;
// values in one block of kBlock share the scale (plain types: 1 for the whole slice), so callers
// hoist it out of the block. bytes(hd) = the slice's size.
struct F16Slice {
  static constexpr int64_t kBlock = 1 << 30;
  static constexpr bool kScaled = false;
  static __m256 load8(const uint8_t* slice, int64_t c) {
    return simd::load_f16x8(reinterpret_cast<const uint16_t*>(slice) + c);
  }
  static float scale(const uint8_t*, int64_t) { return 1.0f; }
  static size_t bytes(int64_t hd) { return static_cast<size_t>(hd) * 2; }
};
struct F32Slice {
  static constexpr int64_t kBlock = 1 << 30;
  static constexpr bool kScaled = false;
  static __m256 load8(const uint8_t* slice, int64_t c) {
    return _mm256_loadu_ps(reinterpret_cast<const float*>(slice) + c);
  }
  static float scale(const uint8_t*, int64_t) { return 1.0f; }
  static size_t bytes(int64_t hd) { return static_cast<size_t>(hd) * 4; }
};
// q8_0: blocks of 32 int8 values q sharing an f16 scale d, value = d · q (the slice starts on a
// block: head_dim is a multiple of 32, see check_kv_type).
struct Q8Slice {
  static constexpr int64_t kBlock = kQ8Block;
  static constexpr bool kScaled = true;
  static const BlockQ8_0* block(const uint8_t* slice, int64_t c) {
    return reinterpret_cast<const BlockQ8_0*>(slice) + c / kQ8Block;
  }
  static __m256 load8(const uint8_t* slice, int64_t c) {
    const __m128i q = _mm_loadl_epi64(reinterpret_cast<const __m128i*>(block(slice, c)->qs + c % kQ8Block));
    return _mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(q));
  }
  static float scale(const uint8_t* slice, int64_t c) { return _cvtsh_ss(block(slice, c)->d); }
  static size_t bytes(int64_t hd) { return static_cast<size_t>(hd / kQ8Block) * sizeof(BlockQ8_0); }
};

// Query heads of one kv group that the kernel carries through a tile together. Every K and V
// vector is converted from the cache type once per such set and never stored: on the Zen 3 VMs
// this runs on, a 256-bit store costs about two cycles (a store-only loop: 1.4 G stores/s at
// ~3 GHz), and the previous kernel, which converted each K block into f32 scratch rows and
// loaded and stored the V accumulators per 8 columns and head, spent about a third of its time
// in those stores (perf annotate). 3 heads × 4 keys = 12 score accumulators + the converted K
// vector + q fill the 16 ymm registers.
constexpr int kMaxSet = 3;

// Lanes 0-3 = the sums of the 8 lanes of a[0..3].
inline __m128 sum_lanes_4(const __m256 (&a)[4]) {
  const __m256 h = _mm256_hadd_ps(_mm256_hadd_ps(a[0], a[1]), _mm256_hadd_ps(a[2], a[3]));
  return _mm_add_ps(_mm256_castps256_ps128(h), _mm256_extractf128_ps(h, 1));
}

// Scaled scores q_s · k_j / √hd of the S heads q [S, hd] for the keys of a tile, 4 keys per step
// with all S heads; key j's slice starts `offset` bytes into tile.k[j]. out [S, kTileKeys];
// lanes from tile.n up to the next multiple of 4 repeat the last key's score.
template <class Slice, int S>
void tile_scores(const Tile& tile, size_t offset, const float* q, int64_t hd, float scale,
                 float* out) {
  for (int j0 = 0; j0 < tile.n; j0 += 4) {
    const uint8_t* k[4];
    for (int j = 0; j < 4; ++j) k[j] = tile.k[std::min(j0 + j, tile.n - 1)] + offset;
    // Block by block (one block for plain types): raw dot products in 12 accumulators, reduced to
    // 4 lanes per head and multiplied by the 4 keys' scales, so the scale costs one multiply per
    // block and head instead of one per 8 values.
    __m128 sc[S];
    for (__m128& x : sc) x = _mm_setzero_ps();
    for (int64_t cb = 0; cb < hd; cb += std::min<int64_t>(Slice::kBlock, hd)) {
      __m256 acc[S][4];
      for (auto& row : acc)
        for (__m256& a : row) a = _mm256_setzero_ps();
      for (int64_t c = cb; c < std::min(hd, cb + Slice::kBlock); c += 8)
        for (int j = 0; j < 4; ++j) {
          const __m256 kc = Slice::load8(k[j], c);
          for (int s = 0; s < S; ++s) acc[s][j] = _mm256_fmadd_ps(kc, _mm256_loadu_ps(q + s * hd + c), acc[s][j]);
        }
      if constexpr (Slice::kScaled) {
        const __m128 d = _mm_setr_ps(Slice::scale(k[0], cb), Slice::scale(k[1], cb),
                                     Slice::scale(k[2], cb), Slice::scale(k[3], cb));
        for (int s = 0; s < S; ++s) sc[s] = _mm_fmadd_ps(sum_lanes_4(acc[s]), d, sc[s]);
      } else {
        for (int s = 0; s < S; ++s) sc[s] = sum_lanes_4(acc[s]);
      }
    }
    for (int s = 0; s < S; ++s) _mm_storeu_ps(out + s * kTileKeys + j0, _mm_mul_ps(sc[s], _mm_set1_ps(scale)));
  }
}

// acc_s[0, vd) = acc_s · rescale_s + Σ_{j < tile.n} p_s[j] v_j for the S heads (acc [S, vd]
// consecutive, p [S, kTileKeys]): columns in blocks of 8W floats whose S·W accumulators stay in
// registers across the tile, each V vector converted once for the S heads. Per element the FMAs
// run in j order.
template <class Slice, int S, int W>
void tile_accumulate_block(const Tile& tile, size_t offset, const float* p, int64_t vd, int64_t c,
                           const float (&rescale)[kMaxSet], float* acc) {
  __m256 a[S][W];
  for (int s = 0; s < S; ++s)
    for (int i = 0; i < W; ++i)
      a[s][i] = _mm256_mul_ps(_mm256_loadu_ps(acc + s * vd + c + 8 * i), _mm256_set1_ps(rescale[s]));
  for (int j = 0; j < tile.n; ++j) {
    const uint8_t* v = tile.v[j] + offset;
    __m256 vc[W];
    for (int i = 0; i < W; ++i) vc[i] = Slice::load8(v, c + 8 * i);
    // The 8W columns lie in one scale block (8W divides 32), so v's scale joins p_j. (Folding the
    // scales into a [S, blocks, keys] weight table once per tile measured the same.)
    const float d = Slice::scale(v, c);
    for (int s = 0; s < S; ++s) {
      const __m256 pj = Slice::kScaled ? _mm256_set1_ps(p[s * kTileKeys + j] * d)
                                       : _mm256_broadcast_ss(p + s * kTileKeys + j);
      for (int i = 0; i < W; ++i) a[s][i] = _mm256_fmadd_ps(pj, vc[i], a[s][i]);
    }
  }
  for (int s = 0; s < S; ++s)
    for (int i = 0; i < W; ++i) _mm256_storeu_ps(acc + s * vd + c + 8 * i, a[s][i]);
}

// The first vd values of each V slice (vd a multiple of 8), acc [S, vd].
template <class Slice, int S>
void tile_accumulate(const Tile& tile, size_t offset, const float* p, int64_t vd,
                     const float (&rescale)[kMaxSet], float* acc) {
  // S·W accumulators + W converted V vectors + the broadcast p within 16 registers.
  constexpr int W = S == 3 ? 2 : 4;
  int64_t c = 0;
  for (; c + 8 * W <= vd; c += 8 * W) tile_accumulate_block<Slice, S, W>(tile, offset, p, vd, c, rescale, acc);
  for (; c < vd; c += 8) tile_accumulate_block<Slice, S, 1>(tile, offset, p, vd, c, rescale, acc);
}

// The chunk's online-softmax state, one tile of up to kTileKeys keys per step (Slice: how the
// cache type is read, F16Slice, F32Slice or Q8Slice). Per tile, kv head and set of up to kMaxSet
// query heads: the scores of the tile (tile_scores), one max / rescale / exp step per head for the whole tile, then Σ p_j v_j
// (tile_accumulate). The second set of a group re-reads the tile's K and V slices from L1. Per
// head h it keeps the running max m_h, the lane-wise running sum of exp(s - m_h) and
// Σ exp(s - m_h) v; a tile that raises m_h first multiplies both by exp(m_old - m_new).
template <class Slice>
class TiledChunk {
 public:
  TiledChunk(const AttentionShape& shape, const float* q, float* scores, int64_t n_keys,
             std::vector<float>& scratch)
      : n_kv_heads_(shape.n_kv_heads), group_(shape.n_heads / shape.n_kv_heads),
        hd_(shape.head_dim), vd_(value_dim(shape)), n_keys_(n_keys),
        scale_(score_scale(shape)), softcap_(shape.softcap), q_(q), scores_(scores) {
    const int64_t n_heads = shape.n_heads;
    // acc [n_heads, vd] | sum [n_heads, 8] | max [n_heads] | s [3, kTileKeys] | p [3, kTileKeys]
    scratch.assign(static_cast<size_t>(n_heads * (vd_ + 8 + 1) + 2 * kMaxSet * kTileKeys), 0.0f);
    acc_ = scratch.data();
    sum_ = acc_ + n_heads * vd_;
    max_ = sum_ + n_heads * 8;
    s_ = max_ + n_heads;
    p_ = s_ + kMaxSet * kTileKeys;
    std::fill(max_, max_ + n_heads, -INFINITY);
  }

  void operator()(const Tile& tile) {
    for (int64_t kvh = 0; kvh < n_kv_heads_; ++kvh)
      for (int64_t h0 = kvh * group_; h0 < (kvh + 1) * group_; h0 += kMaxSet) {
        switch (std::min<int64_t>(kMaxSet, (kvh + 1) * group_ - h0)) {
          case 1: head_set<1>(h0, kvh * Slice::bytes(hd_), tile); break;
          case 2: head_set<2>(h0, kvh * Slice::bytes(hd_), tile); break;
          default: head_set<3>(h0, kvh * Slice::bytes(hd_), tile); break;
        }
      }
  }

  void finish(float* partial) const {
    for (int64_t h = 0; h < n_kv_heads_ * group_; ++h) {
      float* dst = partial + h * (vd_ + 2);
      std::memcpy(dst, acc_ + h * vd_, static_cast<size_t>(vd_) * sizeof(float));
      dst[vd_] = max_[h];
      dst[vd_ + 1] = simd::hsum256(_mm256_loadu_ps(sum_ + h * 8));
    }
  }

 private:
  // The tile's keys for the S query heads h0 .. h0 + S - 1, whose kv head's slice starts `offset`
  // bytes into each row.
  template <int S>
  void head_set(int64_t h0, size_t offset, const Tile& tile) {
    tile_scores<Slice, S>(tile, offset, q_ + h0 * hd_, hd_, scale_, s_);
    if (softcap_ > 0)
      for (int s = 0; s < S; ++s) soft_cap(s_ + s * kTileKeys, tile.n, softcap_);
    float rescale[kMaxSet] = {};
    for (int s = 0; s < S; ++s)
      rescale[s] = softmax_step(h0 + s, s_ + s * kTileKeys, p_ + s * kTileKeys, tile.n, tile.t0);
    tile_accumulate<Slice, S>(tile, offset, p_, vd_, rescale, acc_ + h0 * vd_);
  }

  // Head h's online-softmax update for the tile's scores sc[0..nb): p[j] = exp(sc[j] - m_h) (0
  // from nb to kTileKeys), running sum and max updated; returns the factor that rescales the head's
  // accumulator (exp(m_old - m_new), 1 if the max did not rise, 0 on the first tile).
  float softmax_step(int64_t h, const float* sc, float* p, int nb, int64_t t0) {
    constexpr int kVecs = kTileKeys / 8;
    __m256 s[kVecs];
    __m256 vmax = _mm256_set1_ps(-INFINITY);
    for (int b = 0; b < kVecs; ++b) {
      const __m256i valid = simd::lane_mask(nb - 8 * b);
      s[b] = _mm256_blendv_ps(_mm256_set1_ps(-INFINITY), _mm256_loadu_ps(sc + 8 * b), _mm256_castsi256_ps(valid));
      if (scores_ != nullptr && 8 * b < nb) _mm256_maskstore_ps(scores_ + h * n_keys_ + t0 + 8 * b, valid, s[b]);
      vmax = _mm256_max_ps(vmax, s[b]);
    }
    const float tile_max = simd::hmax256(vmax);
    float rescale = 1.0f;
    if (tile_max > max_[h]) {
      rescale = std::exp(max_[h] - tile_max);  // 0 on the first tile
      max_[h] = tile_max;
    }
    const __m256 m = _mm256_set1_ps(max_[h]);
    __m256 sum = _mm256_mul_ps(_mm256_loadu_ps(sum_ + h * 8), _mm256_set1_ps(rescale));
    for (int b = 0; b < kVecs; ++b) {
      const __m256 e = simd::exp256(_mm256_sub_ps(s[b], m));  // lanes >= nb: 0
      sum = _mm256_add_ps(sum, e);
      _mm256_storeu_ps(p + 8 * b, e);
    }
    _mm256_storeu_ps(sum_ + h * 8, sum);
    return rescale;
  }

  int64_t n_kv_heads_, group_, hd_, vd_, n_keys_;
  float scale_, softcap_;
  const float* q_;  // [n_heads, hd]
  float* scores_;   // [n_heads, n_keys] or nullptr
  float* acc_;      // [n_heads, vd] Σ exp(s - max) v
  float* sum_;      // [n_heads, 8] lane-wise running Σ exp(s - max)
  float* max_;      // [n_heads] running max score
  float* s_;        // [3, kTileKeys] the current head set's scores for the tile
  float* p_;        // [3, kTileKeys] their exp(s - max)
};

#endif

template <class State>
void run_chunk(const AttentionShape& shape, std::span<const KvSpan> spans, int64_t max_pos,
               int64_t t_begin, int64_t t_end, size_t row_bytes, const float* q, float* partial,
               std::vector<float>& scratch, float* scores, int64_t n_keys) {
  State state(shape, q, scores, n_keys, scratch);
  for_each_tile(spans, first_attended_pos(shape, max_pos), max_pos, t_begin, t_end, row_bytes, state);
  state.finish(partial);
}

}  // namespace

void attend_chunk(const AttentionShape& shape, std::span<const KvSpan> spans, int64_t max_pos,
                  int64_t chunk, const float* q, float* partial, std::vector<float>& scratch,
                  float* scores) {
  const int64_t n_keys = attended_keys(spans, max_pos, first_attended_pos(shape, max_pos));
  const int64_t t_begin = chunk * kAttentionChunkKeys;
  const int64_t t_end = std::min(n_keys, t_begin + kAttentionChunkKeys);
  const size_t row = row_bytes(shape.kv_type, shape.n_kv_heads * shape.head_dim);
#if defined(__AVX2__) && defined(__FMA__) && defined(__F16C__)
  if (shape.head_dim % 8 == 0 && value_dim(shape) % 8 == 0) {
    switch (shape.kv_type) {
      case DType::F16:
        return run_chunk<TiledChunk<F16Slice>>(shape, spans, max_pos, t_begin, t_end, row, q,
                                               partial, scratch, scores, n_keys);
      case DType::Q8_0:
        return run_chunk<TiledChunk<Q8Slice>>(shape, spans, max_pos, t_begin, t_end, row, q,
                                              partial, scratch, scores, n_keys);
      default:
        return run_chunk<TiledChunk<F32Slice>>(shape, spans, max_pos, t_begin, t_end, row, q,
                                               partial, scratch, scores, n_keys);
    }
  }
#endif
  run_chunk<ScalarChunk>(shape, spans, max_pos, t_begin, t_end, row, q, partial, scratch, scores,
                         n_keys);
}

void attend_merge(const AttentionShape& shape, const float* partials, int64_t n_chunks, float* out,
                  float* probs, int64_t n_keys) {
  const int64_t hd = value_dim(shape), stride = attention_partial_floats(shape);
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
  const int64_t n_keys = attended_keys(spans, max_pos, first_attended_pos(shape, max_pos));
  const int64_t n_chunks = attention_chunks(n_keys);
  const int64_t stride = attention_partial_floats(shape);
  std::vector<float> partials(static_cast<size_t>(n_chunks * stride));  // [n_chunks, stride]
  for (int64_t c = 0; c < n_chunks; ++c)
    attend_chunk(shape, spans, max_pos, c, q, &partials[static_cast<size_t>(c * stride)], scratch, probs);
  attend_merge(shape, partials.data(), n_chunks, out, probs, n_keys);
}

}  // namespace flashmem
