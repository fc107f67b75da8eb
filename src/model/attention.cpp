#include "model/attention.h"

#include <algorithm>
#include <cmath>
#include <cstring>

#include "tensor/convert.h"
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
      if (j + kPrefetchRows < n) prefetch_head(k + kPrefetchRows * row, head_bytes);
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

// Keys per block of the tiled kernel's two passes over a chunk (see tiled_chunk). A block's K (or
// V) rows, 16 KiB at kv_dim 256 in f16, stay in L1 while every kv head's slice of them is read.
constexpr int64_t kBlockKeys = 32;

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
// the positions of `spans` in [min_pos, max_pos]; returns their count. Cost: O(spans before
// t_end + keys).
int64_t gather_rows(std::span<const KvSpan> spans, int64_t min_pos, int64_t max_pos, int64_t t_begin,
                    int64_t t_end, size_t row_bytes, const uint8_t** k, const uint8_t** v) {
  int64_t count = 0;
  int64_t t = 0;  // key index of the current span's first attended position
  for (const KvSpan& s : spans) {
    if (t >= t_end) break;
    const int64_t n = span_keys(s, min_pos, max_pos), skip = span_skip(s, min_pos);
    for (int64_t i = std::max(t_begin, t); i < std::min(t_end, t + n); ++i, ++count) {
      const size_t at = static_cast<size_t>(skip + i - t) * row_bytes;
      k[count] = s.k + at;
      if (v != nullptr) v[count] = s.v + at;
    }
    t += n;
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

// How the kernel reads one kv head's slice of a K or V row in the cache type: value c of the
// slice is stored at values(slice, c), whose 8 values c .. c + 7 (c a multiple of 8) load8 turns
// into f32 lanes; kScaled: to be multiplied by the scale of their 32-value block (q8_0). Values
// lie kValueBytes apart within a block, so callers find a block's values once and step through it
// by address. bytes(hd) = the slice's size. A q8_0 slice's scores take block_scores_q8 (integer
// dot products), plain types' block_scores.
struct F16Slice {
  static constexpr bool kScaled = false;
  static constexpr int64_t kValueBytes = 2;
  static const uint8_t* values(const uint8_t* slice, int64_t c) { return slice + c * kValueBytes; }
  static __m256 load8(const uint8_t* p) { return simd::load_f16x8(reinterpret_cast<const uint16_t*>(p)); }
  static size_t bytes(int64_t hd) { return static_cast<size_t>(hd * kValueBytes); }
};
struct F32Slice {
  static constexpr bool kScaled = false;
  static constexpr int64_t kValueBytes = 4;
  static const uint8_t* values(const uint8_t* slice, int64_t c) { return slice + c * kValueBytes; }
  static __m256 load8(const uint8_t* p) { return _mm256_loadu_ps(reinterpret_cast<const float*>(p)); }
  static size_t bytes(int64_t hd) { return static_cast<size_t>(hd * kValueBytes); }
};
// q8_0: blocks of 32 int8 values q sharing an f16 scale d, value = d · q (the slice starts on a
// block: head_dim is a multiple of 32, see check_kv_type).
struct Q8Slice {
  static constexpr bool kScaled = true;
  static constexpr int64_t kValueBytes = 1;
  static const BlockQ8_0* block(const uint8_t* slice, int64_t c) {
    return reinterpret_cast<const BlockQ8_0*>(slice) + c / kQ8Block;
  }
  static const uint8_t* values(const uint8_t* slice, int64_t c) {
    return reinterpret_cast<const uint8_t*>(block(slice, c)->qs + c % kQ8Block);
  }
  static __m256 load8(const uint8_t* p) {
    return _mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(_mm_loadl_epi64(reinterpret_cast<const __m128i*>(p))));
  }
  static size_t bytes(int64_t hd) { return static_cast<size_t>(hd / kQ8Block) * sizeof(BlockQ8_0); }
};

// Query heads of one kv group that the kernel carries through a block together. Every K and V
// vector is converted from the cache type once per such set and never stored: 3 heads × 4 keys
// = 12 score accumulators + 3 query vectors + the converted K vector, and 3 heads × 32 columns =
// 12 output accumulators + 3 broadcast weights + the converted V vector, fill the 16 ymm
// registers.
constexpr int kMaxSet = 3;

// Lanes 0-3 = the sums of the 8 lanes of a[0..3].
inline __m128 sum_lanes_4(const __m256 (&a)[4]) {
  const __m256 h = _mm256_hadd_ps(_mm256_hadd_ps(a[0], a[1]), _mm256_hadd_ps(a[2], a[3]));
  return _mm_add_ps(_mm256_castps256_ps128(h), _mm256_extractf128_ps(h, 1));
}

// Scaled scores q_s · k_j · scale of the S heads q [S, hd] for the nb keys whose rows are k_rows
// (an f16 or f32 cache; block_scores_q8 serves q8_0),
// 4 keys per step with all S heads; key j's slice starts `offset` bytes into its row.
// out [S, kAttentionChunkKeys] (head s's scores at out + s · kAttentionChunkKeys); lanes from nb
// up to the next multiple of 4 repeat the last key's score.
template <class Slice, int S, class Step>
void block_scores(const uint8_t* const* k_rows, int64_t nb, size_t offset, const float* q,
                  int64_t hd, float scale, float* out, Step&& step) {
  for (int64_t j0 = 0; j0 < nb; j0 += 4) {
    step();
    const uint8_t* k[4];
    for (int j = 0; j < 4; ++j) k[j] = k_rows[std::min<int64_t>(j0 + j, nb - 1)] + offset;
    // Raw dot products in 12 accumulators, reduced to 4 lanes per head.
    __m256 acc[S][4];
    for (auto& row : acc)
      for (__m256& a : row) a = _mm256_setzero_ps();
    for (int64_t c = 0; c < hd; c += 8) {
      __m256 qc[S];
      for (int s = 0; s < S; ++s) qc[s] = _mm256_loadu_ps(q + s * hd + c);
      for (int j = 0; j < 4; ++j) {
        const __m256 kc = Slice::load8(Slice::values(k[j], c));
        for (int s = 0; s < S; ++s) acc[s][j] = _mm256_fmadd_ps(kc, qc[s], acc[s][j]);
      }
    }
    for (int s = 0; s < S; ++s)
      _mm_storeu_ps(out + s * kAttentionChunkKeys + j0, _mm_mul_ps(sum_lanes_4(acc[s]), _mm_set1_ps(scale)));
  }
}

// Lanes 0-3 = the sums of the 8 int32 lanes of a[0..3] (exact: integer adds).
inline __m128i sum_lanes_4_i32(const __m256i (&a)[4]) {
  const __m256i h = _mm256_hadd_epi32(_mm256_hadd_epi32(a[0], a[1]), _mm256_hadd_epi32(a[2], a[3]));
  return _mm_add_epi32(_mm256_castsi256_si128(h), _mm256_extracti128_si256(h, 1));
}

// 8 int32 lanes summing to Σ_i k_i q_i over one block's 32 codes. maddubs multiplies unsigned by
// signed bytes, so |k| meets q carrying k's sign; |k| <= 128 and |q| <= 127 (quantize_row's codes)
// keep each pair of products within int16 (<= 32512), and madd adds the pairs into int32.
inline __m256i block_dot_i8(__m256i k, __m256i k_abs, __m256i q) {
  return _mm256_madd_epi16(_mm256_maddubs_epi16(k_abs, _mm256_sign_epi8(q, k)), _mm256_set1_epi16(1));
}

// block_scores for a q8_0 cache: the S heads' query in q8_0, q [S, n_blocks] (quantized_query)
// with its scales as f32 in q_d [S, n_blocks],
// meets the keys' codes in integer dot products; per block the 4 keys' int32 sums become f32
// (exactly) and join the running scores with one fused multiply-add by d_k · d_q: dot_q8_0's
// arithmetic, bit for bit.
template <int S, class Step>
void block_scores_q8(const uint8_t* const* k_rows, int64_t nb, size_t offset, const BlockQ8_0* q,
                     const float* q_d, int64_t n_blocks, float scale, float* out, Step&& step) {
  for (int64_t j0 = 0; j0 < nb; j0 += 4) {
    step();
    const BlockQ8_0* k[4];
    for (int j = 0; j < 4; ++j)
      k[j] = reinterpret_cast<const BlockQ8_0*>(k_rows[std::min<int64_t>(j0 + j, nb - 1)] + offset);
    __m128 sc[S];
    for (__m128& x : sc) x = _mm_setzero_ps();
    for (int64_t b = 0; b < n_blocks; ++b) {
      __m256i dot[S][4];
      for (int j = 0; j < 4; ++j) {
        const __m256i kc = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(k[j][b].qs));
        const __m256i k_abs = _mm256_sign_epi8(kc, kc);
        for (int s = 0; s < S; ++s) {
          const __m256i qc = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(q[s * n_blocks + b].qs));
          dot[s][j] = block_dot_i8(kc, k_abs, qc);
        }
      }
      const __m128 d_k = _mm_cvtph_ps(_mm_setr_epi16(
          static_cast<int16_t>(k[0][b].d), static_cast<int16_t>(k[1][b].d), static_cast<int16_t>(k[2][b].d),
          static_cast<int16_t>(k[3][b].d), 0, 0, 0, 0));
      for (int s = 0; s < S; ++s) {
        const __m128 d = _mm_mul_ps(d_k, _mm_set1_ps(q_d[s * n_blocks + b]));
        sc[s] = _mm_fmadd_ps(_mm_cvtepi32_ps(sum_lanes_4_i32(dot[s])), d, sc[s]);
      }
    }
    for (int s = 0; s < S; ++s)
      _mm_storeu_ps(out + s * kAttentionChunkKeys + j0, _mm_mul_ps(sc[s], _mm_set1_ps(scale)));
  }
}

// acc_s[c, c + 8W) += Σ_{j < nb} w_s[j] v_j[c, c + 8W) for the S heads (acc_s at acc + s ·
// acc_stride, w_s at w + s · w_stride: the weights p_sj, times v_j's scale for a q8_0 cache), the
// S·W accumulators in registers across the block, each V vector converted once for the S heads.
// Per element the FMAs run in j order.
template <class Slice, int S, int W>
void block_accumulate_cols(const uint8_t* const* v_rows, int64_t nb, size_t offset, const float* w,
                           int64_t w_stride, int64_t c, float* acc, int64_t acc_stride) {
  __m256 a[S][W];
#pragma GCC unroll 4
  for (int s = 0; s < S; ++s)
#pragma GCC unroll 4
    for (int i = 0; i < W; ++i) a[s][i] = _mm256_loadu_ps(acc + s * acc_stride + c + 8 * i);
  for (int64_t j = 0; j < nb; ++j) {
    const uint8_t* vc0 = Slice::values(v_rows[j] + offset, c);
    __m256 wj[S];
#pragma GCC unroll 4
    for (int s = 0; s < S; ++s) wj[s] = _mm256_broadcast_ss(w + s * w_stride + j);
#pragma GCC unroll 4
    for (int i = 0; i < W; ++i) {
      const __m256 vc = Slice::load8(vc0 + 8 * i * Slice::kValueBytes);
#pragma GCC unroll 4
      for (int s = 0; s < S; ++s) a[s][i] = _mm256_fmadd_ps(wj[s], vc, a[s][i]);
    }
  }
#pragma GCC unroll 4
  for (int s = 0; s < S; ++s)
#pragma GCC unroll 4
    for (int i = 0; i < W; ++i) _mm256_storeu_ps(acc + s * acc_stride + c + 8 * i, a[s][i]);
}

// w [S, kBlockKeys] = p_sj · d_j for the nb (<= kBlockKeys) keys of a q8_0 cache, d_j the scale of
// v_j's 32-value block holding column c: the scale joins the weight once per key and block, 8 keys
// per multiply, instead of once per key in the accumulation loop. p_s at p + s ·
// kAttentionChunkKeys (read up to the next multiple of 8 keys, within the chunk's row); lanes
// from nb on are not used.
template <int S>
void scaled_weights(const uint8_t* const* v_rows, int64_t nb, size_t offset, const float* p, int64_t c,
                    float* w) {
  alignas(16) uint16_t d[kBlockKeys] = {};  // [kBlockKeys] the keys' f16 block scales
  for (int64_t j = 0; j < nb; ++j) d[j] = Q8Slice::block(v_rows[j] + offset, c)->d;
  for (int64_t j0 = 0; j0 < nb; j0 += 8) {
    const __m256 d8 = _mm256_cvtph_ps(_mm_load_si128(reinterpret_cast<const __m128i*>(d + j0)));
    for (int s = 0; s < S; ++s)
      _mm256_storeu_ps(w + s * kBlockKeys + j0,
                       _mm256_mul_ps(_mm256_loadu_ps(p + s * kAttentionChunkKeys + j0), d8));
  }
}

// The first vd values of each V slice (vd a multiple of 8): 32 columns per step (one q8_0
// block), then 8.
template <class Slice, int S>
void block_accumulate(const uint8_t* const* v_rows, int64_t nb, size_t offset, const float* p,
                      int64_t vd, float* acc, int64_t acc_stride) {
  constexpr int W = 4;  // S·W accumulators + S weights + the V vector within 16 registers
  alignas(32) float scaled[S * kBlockKeys];  // [S, kBlockKeys] p · d for one q8_0 block of columns
  for (int64_t c = 0; c < vd; c += 8 * W) {
    const float* w = p;
    int64_t w_stride = kAttentionChunkKeys;
    if constexpr (Slice::kScaled) {
      scaled_weights<S>(v_rows, nb, offset, p, c, scaled);
      w = scaled;
      w_stride = kBlockKeys;
    }
    if (c + 8 * W <= vd) {
      block_accumulate_cols<Slice, S, W>(v_rows, nb, offset, w, w_stride, c, acc, acc_stride);
    } else {
      for (int64_t c8 = c; c8 < vd; c8 += 8)
        block_accumulate_cols<Slice, S, 1>(v_rows, nb, offset, w, w_stride, c8, acc, acc_stride);
    }
  }
}

// Whole rows rows[0, n) fetched a few per step() over `steps` calls, so that their lines arrive
// while the work the steps are part of runs.
class RowPrefetcher {
 public:
  RowPrefetcher(const uint8_t* const* rows, int64_t n, size_t row_bytes, int64_t steps)
      : rows_(rows), n_(n), row_bytes_(row_bytes), per_step_(steps > 0 ? (n + steps - 1) / steps : n) {}
  void step() {
    for (int64_t i = 0; i < per_step_ && next_ < n_; ++i) prefetch_head(rows_[next_++], row_bytes_);
  }

 private:
  const uint8_t* const* rows_;
  int64_t n_;
  size_t row_bytes_;
  int64_t per_step_, next_ = 0;
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

// Calls f.template operator()<S>(h0, kv_head) for every set of up to kMaxSet consecutive query
// heads h0 .. h0 + S - 1 of one kv head, kv head by kv head.
template <class F>
void for_each_head_set(const AttentionShape& shape, F&& f) {
  const int64_t group = shape.n_heads / shape.n_kv_heads;
  for (int64_t kvh = 0; kvh < shape.n_kv_heads; ++kvh)
    for (int64_t h0 = kvh * group; h0 < (kvh + 1) * group; h0 += kMaxSet) {
      switch (std::min<int64_t>(kMaxSet, (kvh + 1) * group - h0)) {
        case 1: f.template operator()<1>(h0, kvh); break;
        case 2: f.template operator()<2>(h0, kvh); break;
        default: f.template operator()<3>(h0, kvh); break;
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
  std::vector<float> q8_d(q8.size());  // [n_heads, hd / 32] their scales as f32
  for (size_t i = 0; i < q8.size(); ++i) q8_d[i] = fp16_to_f32(q8[i].d);
  const int64_t group = shape.n_heads / shape.n_kv_heads;
  const int64_t n_sets = shape.n_kv_heads * ((group + kMaxSet - 1) / kMaxSet);
  for (int64_t b = 0; b < n; b += kBlockKeys) {
    const int64_t nb = std::min(kBlockKeys, n - b);
    // While pass 1 reads this block's K rows, the next block's K rows and this block's V rows
    // (read by pass 2, from L2) are fetched, spread over the block's steps of 4 keys.
    const int64_t steps = n_sets * ((nb + 3) / 4);
    RowPrefetcher next_k(rows.k + b + nb, std::min(kBlockKeys, n - b - nb), rows.row_bytes, steps);
    RowPrefetcher this_v(rows.v + b, nb, rows.row_bytes, steps);
    auto step = [&] {
      next_k.step();
      this_v.step();
    };
    for_each_head_set(shape, [&]<int S>(int64_t h0, int64_t kvh) {
      if constexpr (Slice::kScaled) {
        const int64_t n_blocks = hd / kQ8Block;
        block_scores_q8<S>(rows.k + b, nb, kvh * slice_bytes, &q8[h0 * n_blocks], &q8_d[h0 * n_blocks], n_blocks,
                           scale, s + h0 * kAttentionChunkKeys + b, step);
      } else {
        block_scores<Slice, S>(rows.k + b, nb, kvh * slice_bytes, q + h0 * hd, hd, scale,
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
      block_accumulate<Slice, S>(rows.v + b, nb, kvh * slice_bytes, s + h0 * kAttentionChunkKeys + b,
                                 vd, partial + h0 * stride, stride);
    });
  }
}

#endif

}  // namespace

void attend_chunk(const AttentionShape& shape, std::span<const KvSpan> spans, int64_t max_pos,
                  int64_t chunk, const float* q, float* partial, std::vector<float>& scratch,
                  float* scores, int64_t next_chunk) {
  const int64_t min_pos = first_attended_pos(shape, max_pos);
  const int64_t n_keys = attended_keys(spans, max_pos, min_pos);
  const int64_t t_begin = chunk * kAttentionChunkKeys;
  const int64_t t_end = std::min(n_keys, t_begin + kAttentionChunkKeys);
  ChunkRows rows;
  rows.t0 = t_begin;
  rows.row_bytes = row_bytes(shape.kv_type, shape.n_kv_heads * shape.head_dim);
  rows.n = gather_rows(spans, min_pos, max_pos, t_begin, t_end, rows.row_bytes, rows.k, rows.v);
  if (next_chunk >= 0) {
    const int64_t next = next_chunk * kAttentionChunkKeys;
    rows.n_next = gather_rows(spans, min_pos, max_pos, next, std::min(n_keys, next + kBlockKeys),
                              rows.row_bytes, rows.next_k, nullptr);
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
    attend_chunk(shape, spans, max_pos, c, q, &partials[static_cast<size_t>(c * stride)], scratch, probs,
                 c + 1 < n_chunks ? c + 1 : -1);
  attend_merge(shape, partials.data(), n_chunks, out, probs, n_keys);
}

}  // namespace flashmem
