#include "model/attention.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>

#include "model/attention_tile.h"
#include "model/attention_tile_avx2.h"
#include "model/attention_tile_avx512.h"
#include "tensor/convert.h"
#include "tensor/kernels.h"
#include "tensor/simd.h"
#include "util/cpu_identity.h"

namespace flashmem {
namespace {

// A head's slice of a K/V row is 128-256 bytes out of every n_kv_heads times that, a stride the
// hardware prefetchers follow poorly at long contexts; asking for the slice 8 positions ahead
// measured +20-30% decode at --context 4096 (16 ahead: no better).
constexpr int64_t kPrefetchRows = 8;

// Every 64-byte line of [p, p + bytes) fetched ahead: kLocality 3 into L1 (prefetcht0 on x86),
// 2 into L2 (prefetcht1).
template <int kLocality = 3>
void prefetch_lines(const uint8_t* p, size_t bytes) {
  const uintptr_t first = reinterpret_cast<uintptr_t>(p) & ~uintptr_t{63};
  for (uintptr_t a = first; a < reinterpret_cast<uintptr_t>(p) + bytes; a += 64)
    __builtin_prefetch(reinterpret_cast<const void*>(a), 0, kLocality);
}

// A block-quantized (q8_0) slice of wide.size() values as f32, in `wide`.
const float* dequantized(DType type, const uint8_t* slice, std::vector<float>& wide) {
  dequantize_row(type, slice, wide.data(), static_cast<int64_t>(wide.size()));
  return wide.data();
}

// q8_0 keys meet the query quantized to q8_0 (as llama.cpp's CPU flash attention converts Q to
// its q8_0 cache's dot type): integer dot products per 32-value block instead of converting every
// key value to f32. out: [n / 32] the blocks of q [n] (n a multiple of 32), by quantize_row.
std::vector<BlockQ8_0> quantized_query(const float* q, int64_t n) {
  std::vector<BlockQ8_0> out(static_cast<size_t>(n / kQ8Block));
  quantize_row(DType::Q8_0, q, out.data(), n);
  return out;
}

// The q8_0 score arithmetic every path shares: Σ_b (Σ_i k_bi q_bi) · (d_k,b · d_q,b), the integer
// block sums exact (|Σ| <= 32 · 128 · 127 < 2^24, so also exact as f32), the product of the
// scales rounded to f32, and one fused multiply-add per block in block order.
float dot_q8_0(const BlockQ8_0* k, const BlockQ8_0* q, int64_t n_blocks) {
  float sum = 0.0f;
  for (int64_t b = 0; b < n_blocks; ++b) {
    int32_t dot = 0;
    for (int i = 0; i < kQ8Block; ++i) dot += int32_t{k[b].qs[i]} * int32_t{q[b].qs[i]};
    sum = std::fma(static_cast<float>(dot), fp16_to_f32(k[b].d) * fp16_to_f32(q[b].d), sum);
  }
  return sum;
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
  std::vector<float> wide(static_cast<size_t>(hd));   // [hd] a q8_0 V slice dequantized
  // [group, hd / 32] the query heads in q8_0 (for a q8_0 cache, else empty)
  const std::vector<BlockQ8_0> q8 =
      type == DType::Q8_0 ? quantized_query(q, group * hd) : std::vector<BlockQ8_0>{};

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
      if (j + kPrefetchRows < n) prefetch_lines(k + kPrefetchRows * row, head_bytes);
      if (type == DType::F16) {
        dot_f16_f32_heads(reinterpret_cast<const uint16_t*>(k), q, group, hd, dots.data());
      } else if (type == DType::Q8_0) {
        for (int64_t g = 0; g < group; ++g)
          dots[static_cast<size_t>(g)] =
              dot_q8_0(reinterpret_cast<const BlockQ8_0*>(k), &q8[g * hd / kQ8Block], hd / kQ8Block);
      } else {
        for (int64_t g = 0; g < group; ++g)
          dots[static_cast<size_t>(g)] = dot_f32(reinterpret_cast<const float*>(k), q + g * hd, hd);
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
      if (j + kPrefetchRows < n) prefetch_lines(v + kPrefetchRows * row, head_bytes);
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

using attention_tile::kBlockKeys;

// The K and V rows of one chunk's keys t0 .. t0 + n - 1 (n <= kAttentionChunkKeys), gathered
// across spans once per chunk: k[j], v[j] = the start of key t0 + j's whole rows (all kv heads).
// next_k: the first K rows of the chunk the calling thread attends next (n_next of them; fetched
// while this chunk's last pass runs, since the hardware prefetchers do not follow the jump).
struct ChunkRows {
  const uint8_t* k[kAttentionChunkKeys];
  const uint8_t* v[kAttentionChunkKeys];
  const uint8_t* next_k[kBlockKeys];
  int64_t n = 0, n_next = 0;
  int64_t t0 = 0;
  size_t row_bytes = 0;  // of one K (or V) row
};

// k[i], v[i] (v: nullptr = not wanted) = the rows of keys t_begin + i in [t_begin, t_end) among
// the keys `index` describes in `spans`; returns their count. Cost: O(log spans + spans holding
// those keys + keys).
int64_t gather_rows(std::span<const KvSpan> spans, const KeyIndex& index, int64_t t_begin, int64_t t_end,
                    size_t row_bytes, const uint8_t** k, const uint8_t** v) {
  if (t_begin >= t_end) return 0;  // (also when spans is empty: first = {0})
  const std::vector<int64_t>& first = index.span_first;
  // The last span whose first key is <= t_begin (first[0] = 0 <= t_begin).
  size_t s = static_cast<size_t>(std::upper_bound(first.begin(), first.end() - 1, t_begin) - first.begin()) - 1;
  int64_t count = 0;
  for (; s < spans.size() && first[s] < t_end; ++s) {
    const int64_t t = first[s], skip = span_skip(spans[s], index.min_pos);
    for (int64_t i = std::max(t_begin, t); i < std::min(t_end, first[s + 1]); ++i, ++count) {
      const size_t at = static_cast<size_t>(skip + i - t) * row_bytes;
      k[count] = spans[s].k + at;
      if (v != nullptr) v[count] = spans[s].v + at;
    }
  }
  return count;
}

// The chunk's online-softmax state, one key at a time: builds without AVX2 and head_dim % 8 != 0.
// Per head h: running max m_h, Σ exp(s - m_h) and Σ exp(s - m_h) v, both multiplied by
// exp(m_old - m_new) when a key raises m_h. partial [n_heads, v_dim + 2] (see
// attention_partial_floats), scores: as attend_chunk.
void scalar_chunk(const AttentionShape& shape, const ChunkRows& rows, const float* q, float* partial,
                  float* scores, int64_t n_keys) {
  const int64_t group = shape.n_heads / shape.n_kv_heads, hd = shape.head_dim, vd = value_dim(shape);
  const DType type = shape.kv_type;
  const bool f16 = type == DType::F16, f32 = type == DType::F32;
  const size_t head_bytes = row_bytes(type, hd);
  const float scale = score_scale(shape);
  // [hd]: a q8_0 V slice dequantized; [n_heads, hd / 32]: the query heads in q8_0 (else empty)
  std::vector<float> v_wide(f16 || f32 ? 0 : static_cast<size_t>(hd));
  const std::vector<BlockQ8_0> q8 =
      f16 || f32 ? std::vector<BlockQ8_0>{} : quantized_query(q, shape.n_heads * hd);
  for (int64_t h = 0; h < shape.n_heads; ++h) {
    float* acc = partial + h * (vd + 2);  // [vd] then max, sum
    float &max_score = acc[vd], &sum = acc[vd + 1];
    std::fill(acc, acc + vd, 0.0f);
    max_score = -INFINITY;
    sum = 0;
    const size_t offset = static_cast<size_t>(h / group) * head_bytes;
    for (int64_t j = 0; j < rows.n; ++j) {
      const uint8_t* kr = rows.k[j] + offset;
      const uint8_t* vr = rows.v[j] + offset;
      float s = scale * (f16   ? dot_f16_f32(reinterpret_cast<const uint16_t*>(kr), q + h * hd, hd)
                         : f32 ? dot_f32(reinterpret_cast<const float*>(kr), q + h * hd, hd)
                               : dot_q8_0(reinterpret_cast<const BlockQ8_0*>(kr), &q8[h * hd / kQ8Block],
                                          hd / kQ8Block));
      if (shape.softcap > 0) soft_cap(&s, 1, shape.softcap);
      if (scores != nullptr) scores[h * n_keys + rows.t0 + j] = s;
      if (s > max_score) {
        const float rescale = std::exp(max_score - s);  // 0 on the first key
        max_score = s;
        sum *= rescale;
        for (int64_t c = 0; c < vd; ++c) acc[c] *= rescale;
      }
      const float p = std::exp(s - max_score);
      sum += p;
      if (f16) {
        axpy_f16(p, reinterpret_cast<const uint16_t*>(vr), acc, vd);
      } else {
        axpy_f32(p, f32 ? reinterpret_cast<const float*>(vr) : dequantized(type, vr, v_wide), acc, vd);
      }
    }
  }
}

#if defined(__AVX2__) && defined(__FMA__) && defined(__F16C__)

// The block kernels (block_scores, block_scores_q8, block_accumulate, kMaxSet, kKeysPerStep) of
// the widest vectors the build has.
#if defined(FLASHMEM_ATTENTION_AVX512)
namespace tile = attention_tile_avx512;
#else
namespace tile = attention_tile_avx2;
#endif
using attention_tile::F16Slice;
using attention_tile::F32Slice;
using attention_tile::Q8Slice;

// Whether the tiled decode kernel fetches the K and V rows it reads next into L2 only
// (prefetcht1) rather than into L1 (prefetcht0). A core streaming its share of the history needs
// ~40 lines in flight (~20 GB/s at ~120 ns); L1-bound fetches hold one of L1's few miss buffers
// each until they arrive, L2-bound ones do not. Measured per microarchitecture (docs/BENCHMARKS.md,
// sixteenth session): on Zen 4 (AMD family 0x19, which honours prefetcht1 as L2) L2 made the
// engine's 16K f16 decode attention 14.2-16.9 -> 8.5-9.8 ms per token on a synthetic history and
// 12.8-14.1 -> 9.6-10.4 after a real prefill, same tokens (q8_0 KV: within noise); on the Zen 5
// hosts (family 0x1A) of the fourteenth session L2 was slower (12.4-16.3 against 16.7-19.3 GB/s
// from DRAM). Family 0x19 also covers Zen 3, for which AMD does not document prefetcht1 as
// L2-only (that is new in Zen 4): expected unchanged there, not measured. Other processors: not
// measured, L1 as before. FLASHMEM_KV_PREFETCH=l1|l2 overrides the choice (A/B runs of one
// binary); another value is reported once per process and ignored.
bool choose_fetch_into_l2() {
  if (const char* env = std::getenv("FLASHMEM_KV_PREFETCH"); env != nullptr) {
    if (std::strcmp(env, "l1") == 0) return false;
    if (std::strcmp(env, "l2") == 0) return true;
    std::fprintf(stderr, "flashmem: FLASHMEM_KV_PREFETCH='%s' is neither l1 nor l2; choosing by processor\n", env);
  }
  const CpuIdentity& cpu = cpu_identity();
  return cpu.vendor == "AuthenticAMD" && cpu.family == 0x19;
}
bool fetch_into_l2() {
  static const bool l2 = choose_fetch_into_l2();
  return l2;
}

// Whole rows rows[0, n) fetched a few per step() over `steps` calls, so that their lines arrive
// while the work the steps are part of runs; into L2 only when fetch_into_l2().
class RowPrefetcher {
 public:
  RowPrefetcher(const uint8_t* const* rows, int64_t n, size_t row_bytes, int64_t steps)
      : rows_(rows), n_(n), row_bytes_(row_bytes), per_step_(steps > 0 ? (n + steps - 1) / steps : n),
        l2_(fetch_into_l2()) {}
  void step() {
    for (int64_t i = 0; i < per_step_ && next_ < n_; ++i) {
      if (l2_) {
        prefetch_lines<2>(rows_[next_++], row_bytes_);
      } else {
        prefetch_lines<3>(rows_[next_++], row_bytes_);
      }
    }
  }

 private:
  const uint8_t* const* rows_;
  int64_t n_;
  size_t row_bytes_;
  int64_t per_step_, next_ = 0;
  bool l2_;
};

// Largest of x[0, n) (n >= 1).
float max_of(const float* x, int64_t n) {
  __m256 m = _mm256_set1_ps(-INFINITY);
  for (int64_t i = 0; i < n; i += 8) {
    const __m256i valid = simd::lane_mask(n - i);
    m = _mm256_max_ps(m, _mm256_blendv_ps(m, _mm256_maskload_ps(x + i, valid), _mm256_castsi256_ps(valid)));
  }
  return simd::hmax256(m);
}

// Calls f.template operator()<S>(h0, kv_head) for every set of up to tile::kMaxSet (3 or 4)
// consecutive query heads h0 .. h0 + S - 1 of one kv head, kv head by kv head.
template <class F>
void for_each_head_set(const AttentionShape& shape, F&& f) {
  static_assert(tile::kMaxSet == 3 || tile::kMaxSet == 4);
  const int64_t group = shape.n_heads / shape.n_kv_heads;
  for (int64_t kvh = 0; kvh < shape.n_kv_heads; ++kvh)
    for (int64_t h0 = kvh * group; h0 < (kvh + 1) * group; h0 += tile::kMaxSet) {
      switch (std::min<int64_t>(tile::kMaxSet, (kvh + 1) * group - h0)) {
        case 1: f.template operator()<1>(h0, kvh); break;
        case 2: f.template operator()<2>(h0, kvh); break;
        case 3: f.template operator()<3>(h0, kvh); break;
        default: f.template operator()<tile::kMaxSet>(h0, kvh); break;
      }
    }
}

// The chunk's state in two passes over its keys (Slice: how the cache type is read, F16Slice,
// F32Slice or Q8Slice), each in blocks of kBlockKeys keys, every kv head's slice of a block's rows
// read while they are in L1: pass 1 computes all heads' scores of the chunk; then per head the
// chunk's max m and p_t = exp(s_t - m); pass 2 accumulates Σ p_t v_t. With the chunk's max known
// before pass 2 there is no running max to rescale, and each head's accumulators are loaded and
// stored once per block.
template <class Slice>
void tiled_chunk(const AttentionShape& shape, const ChunkRows& rows, const float* q, float* partial,
                 std::vector<float>& scratch, float* scores, int64_t n_keys) {
  const int64_t n = rows.n, hd = shape.head_dim, vd = value_dim(shape), stride = vd + 2;
  const size_t slice_bytes = Slice::bytes(hd);
  const float scale = score_scale(shape);
  scratch.resize(static_cast<size_t>(shape.n_heads * kAttentionChunkKeys));
  float* s = scratch.data();  // [n_heads, kAttentionChunkKeys] the chunk's scores, then exp(s - m)
  for (int64_t h = 0; h < shape.n_heads; ++h) {
    float* acc = partial + h * stride;  // [vd] then max, sum
    std::fill(acc, acc + vd, 0.0f);
    acc[vd] = -INFINITY;
    acc[vd + 1] = 0.0f;
  }
  if (n == 0) return;
  // [n_heads, hd / 32] the query in q8_0 for a q8_0 cache (Q8Slice, the only scaled type), else empty
  const std::vector<BlockQ8_0> q8 =
      Slice::kScaled ? quantized_query(q, shape.n_heads * hd) : std::vector<BlockQ8_0>{};
  const int64_t n_blocks = Slice::kScaled ? hd / kQ8Block : 0;
  std::vector<float> q8_d(q8.size());  // [hd / 32, n_heads] their scales as f32, block-major
  for (int64_t h = 0; h < shape.n_heads; ++h)
    for (int64_t i = 0; i < n_blocks; ++i) q8_d[i * shape.n_heads + h] = fp16_to_f32(q8[h * n_blocks + i].d);
  const int64_t group = shape.n_heads / shape.n_kv_heads;
  const int64_t n_sets = shape.n_kv_heads * ((group + tile::kMaxSet - 1) / tile::kMaxSet);
  for (int64_t b = 0; b < n; b += kBlockKeys) {
    const int64_t nb = std::min(kBlockKeys, n - b);
    // While pass 1 reads this block's K rows, the next block's K rows and this block's V rows
    // (read by pass 2, from L2) are fetched, spread over the block's steps. On the AVX-512 (Zen 4)
    // machine, leaving these and pass 2's fetches out made bench_attention's cold 16K rows 1.9x
    // (f16) and 2.6x (q8_0) slower, and its cache-resident 1024-key rows ~10% faster.
    const int64_t steps = n_sets * ((nb + tile::kKeysPerStep - 1) / tile::kKeysPerStep);
    RowPrefetcher next_k(rows.k + b + nb, std::min(kBlockKeys, n - b - nb), rows.row_bytes, steps);
    RowPrefetcher this_v(rows.v + b, nb, rows.row_bytes, steps);
    auto step = [&] {
      next_k.step();
      this_v.step();
    };
    for_each_head_set(shape, [&]<int S>(int64_t h0, int64_t kvh) {
      if constexpr (Slice::kScaled) {
        tile::block_scores_q8<S>(rows.k + b, nb, kvh * slice_bytes, &q8[h0 * n_blocks], &q8_d[h0], shape.n_heads,
                                 n_blocks, scale, s + h0 * kAttentionChunkKeys + b, step);
      } else {
        tile::block_scores<Slice, S>(rows.k + b, nb, kvh * slice_bytes, q + h0 * hd, hd, scale,
                                     s + h0 * kAttentionChunkKeys + b, step);
      }
    });
  }
  for (int64_t h = 0; h < shape.n_heads; ++h) {
    float* sh = s + h * kAttentionChunkKeys;
    if (shape.softcap > 0) soft_cap(sh, n, shape.softcap);
    if (scores != nullptr) std::copy(sh, sh + n, scores + h * n_keys + rows.t0);
    float* acc = partial + h * stride;
    acc[vd] = max_of(sh, n);
    acc[vd + 1] = exp_shift_sum(sh, n, acc[vd]);
  }
  RowPrefetcher next_k(rows.next_k, rows.n_next, rows.row_bytes, n_sets * ((n + kBlockKeys - 1) / kBlockKeys));
  for (int64_t b = 0; b < n; b += kBlockKeys) {
    const int64_t nb = std::min(kBlockKeys, n - b);
    for_each_head_set(shape, [&]<int S>(int64_t h0, int64_t kvh) {
      next_k.step();
      tile::block_accumulate<Slice, S>(rows.v + b, nb, kvh * slice_bytes, s + h0 * kAttentionChunkKeys + b,
                                       vd, partial + h0 * stride, stride);
    });
  }
}

#endif

}  // namespace

void index_keys(const AttentionShape& shape, std::span<const KvSpan> spans, int64_t max_pos, KeyIndex& index) {
  index.min_pos = first_attended_pos(shape, max_pos);
  index.span_first.resize(spans.size() + 1);
  int64_t t = 0;
  for (size_t s = 0; s < spans.size(); ++s) {
    index.span_first[s] = t;
    t += span_keys(spans[s], index.min_pos, max_pos);
  }
  index.span_first[spans.size()] = t;
  index.n_keys = t;
}

void attend_chunk(const AttentionShape& shape, std::span<const KvSpan> spans, int64_t max_pos,
                  int64_t chunk, const float* q, float* partial, std::vector<float>& scratch,
                  float* scores, int64_t next_chunk) {
  thread_local KeyIndex index;  // per thread: rebuilt per call
  index_keys(shape, spans, max_pos, index);
  attend_chunk(shape, spans, index, chunk, q, partial, scratch, scores, next_chunk);
}

void attend_chunk(const AttentionShape& shape, std::span<const KvSpan> spans, const KeyIndex& index,
                  int64_t chunk, const float* q, float* partial, std::vector<float>& scratch,
                  float* scores, int64_t next_chunk) {
  const int64_t n_keys = index.n_keys;
  const int64_t t_begin = chunk * kAttentionChunkKeys;
  const int64_t t_end = std::min(n_keys, t_begin + kAttentionChunkKeys);
  ChunkRows rows;
  rows.t0 = t_begin;
  rows.row_bytes = row_bytes(shape.kv_type, shape.n_kv_heads * shape.head_dim);
  rows.n = gather_rows(spans, index, t_begin, t_end, rows.row_bytes, rows.k, rows.v);
  if (next_chunk >= 0) {
    const int64_t next = next_chunk * kAttentionChunkKeys;
    rows.n_next = gather_rows(spans, index, next, std::min(n_keys, next + kBlockKeys), rows.row_bytes,
                              rows.next_k, nullptr);
  }
#if defined(__AVX2__) && defined(__FMA__) && defined(__F16C__)
  if (shape.head_dim % 8 == 0 && value_dim(shape) % 8 == 0) {
    switch (shape.kv_type) {
      case DType::F16: return tiled_chunk<F16Slice>(shape, rows, q, partial, scratch, scores, n_keys);
      case DType::Q8_0: return tiled_chunk<Q8Slice>(shape, rows, q, partial, scratch, scores, n_keys);
      default: return tiled_chunk<F32Slice>(shape, rows, q, partial, scratch, scores, n_keys);
    }
  }
#endif
  scalar_chunk(shape, rows, q, partial, scores, n_keys);
}

const char* attention_fetch_level() {
#if defined(__AVX2__) && defined(__FMA__) && defined(__F16C__)
  return fetch_into_l2() ? "l2" : "l1";
#else
  return "none";  // the scalar chunk kernel fetches nothing ahead
#endif
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
  KeyIndex index;
  index_keys(shape, spans, max_pos, index);
  const int64_t n_keys = index.n_keys;
  const int64_t n_chunks = attention_chunks(n_keys);
  const int64_t stride = attention_partial_floats(shape);
  std::vector<float> partials(static_cast<size_t>(n_chunks * stride));  // [n_chunks, stride]
  for (int64_t c = 0; c < n_chunks; ++c)
    attend_chunk(shape, spans, index, c, q, &partials[static_cast<size_t>(c * stride)], scratch, probs,
                 c + 1 < n_chunks ? c + 1 : -1);
  attend_merge(shape, partials.data(), n_chunks, out, probs, n_keys);
}

}  // namespace flashmem
