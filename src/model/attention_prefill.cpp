#include "model/attention_prefill.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>
#include <utility>

#include "model/attention_prefill_lanes.h"
#include "tensor/kernels.h"
#include "util/error.h"

namespace flashmem {
namespace {

using prefill::NativeLanes;
using prefill::TwinLanes;

int64_t round_up(int64_t x, int64_t m) { return (x + m - 1) / m * m; }

// s [kb, rows], row vectors v0 .. v0 + NV - 1: s[j, r] = (Σ_d kf[j, d] · qt[d, r]) · scale, one
// fused multiply-add per d in ascending order. kf [kb, hd], qt [hd, rows]; kb a multiple of
// L::kBlockKeys.
template <class L, int NV>
void block_scores(const float* kf, const float* qt, int64_t hd, int64_t rows, int64_t v0, int64_t kb,
                  float scale, float* s) {
  using V = typename L::V;
  constexpr int64_t kLanes = L::kLanes;
  constexpr int kBlockKeys = L::kBlockKeys;
  for (int64_t j0 = 0; j0 < kb; j0 += kBlockKeys) {
    V acc[kBlockKeys][NV];
    for (auto& row : acc)
      for (V& a : row) a = L::set1(0.0f);
    for (int64_t d = 0; d < hd; ++d) {
      V q[NV];
      for (int i = 0; i < NV; ++i) q[i] = L::load(qt + d * rows + (v0 + i) * kLanes);
      for (int j = 0; j < kBlockKeys; ++j) {
        const V k = L::set1(kf[(j0 + j) * hd + d]);
        for (int i = 0; i < NV; ++i) acc[j][i] = L::fma(k, q[i], acc[j][i]);
      }
    }
    for (int j = 0; j < kBlockKeys; ++j)
      for (int i = 0; i < NV; ++i)
        L::store(s + (j0 + j) * rows + (v0 + i) * kLanes, L::mul(acc[j][i], L::set1(scale)));
  }
}

// ot[c, r] = ot[c, r] · rescale[r] + Σ_{j < kb} p[j, r] · vf[j, c] (j ascending) for columns
// c0 .. c0 + NC - 1 and row vectors v0 .. v0 + NV - 1. p [kb, rows], vf [kb, vd], ot [vd, rows].
template <class L, int NC, int NV>
void block_values(const float* p, const float* vf, int64_t vd, int64_t rows, int64_t v0, int64_t c0,
                  int64_t kb, const float* rescale, float* ot) {
  using V = typename L::V;
  constexpr int64_t kLanes = L::kLanes;
  V acc[NC][NV];
  for (int c = 0; c < NC; ++c)
    for (int i = 0; i < NV; ++i)
      acc[c][i] = L::mul(L::load(ot + (c0 + c) * rows + (v0 + i) * kLanes), L::load(rescale + (v0 + i) * kLanes));
  for (int64_t j = 0; j < kb; ++j) {
    V pj[NV];
    for (int i = 0; i < NV; ++i) pj[i] = L::load(p + j * rows + (v0 + i) * kLanes);
    for (int c = 0; c < NC; ++c) {
      const V v = L::set1(vf[j * vd + c0 + c]);
      for (int i = 0; i < NV; ++i) acc[c][i] = L::fma(pj[i], v, acc[c][i]);
    }
  }
  for (int c = 0; c < NC; ++c)
    for (int i = 0; i < NV; ++i) L::store(ot + (c0 + c) * rows + (v0 + i) * kLanes, acc[c][i]);
}

// Calls f.template operator()<NV>(v0) for the row vectors [0, n_vecs) in groups of up to
// kMaxVecs (NV = kMaxVecs but for the last group).
template <int kMaxVecs, class F>
void for_vector_groups(int64_t n_vecs, F&& f) {
  for (int64_t v0 = 0; v0 < n_vecs; v0 += kMaxVecs) {
    const int64_t nv = std::min<int64_t>(kMaxVecs, n_vecs - v0);
    [&]<int... I>(std::integer_sequence<int, I...>) {
      ((nv == I + 1 ? f.template operator()<I + 1>(v0) : void()), ...);
    }(std::make_integer_sequence<int, kMaxVecs>{});
  }
}

}  // namespace

void PrefillAttention::plan(const AttentionShape& shape, std::span<const KvSpan> spans, int64_t windowed,
                            int64_t pos0, int64_t n, const float* q) {
  if (shape.n_kv_heads <= 0 || shape.n_heads % shape.n_kv_heads != 0)
    fail("prefill attention: {} query heads cannot share {} kv heads", shape.n_heads, shape.n_kv_heads);
  if (shape.kv_type == DType::Q8_0 && shape.head_dim % kQ8Block != 0)
    fail("prefill attention: a q8_0 KV head of {} values is not whole blocks of {}", shape.head_dim, kQ8Block);
  if (pos0 < 0 || pos0 + n > std::numeric_limits<int32_t>::max())
    fail("prefill attention: positions {} .. {} exceed the kernel's int32 lanes", pos0, pos0 + n - 1);
  if (windowed > 0 && shape.window > 0) fail("prefill attention: a sliding window over a windowed history");
  shape_ = shape;
  use_keys(spans, windowed);
  group_ = shape.n_heads / shape.n_kv_heads;
  hd_ = shape.head_dim;
  vd_ = value_dim(shape);
  scale_ = shape.scale > 0 ? shape.scale : 1.0f / std::sqrt(static_cast<float>(hd_));
  n_tokens_ = n;
  n_keys_ = n > 0 ? windowed + attended_keys(spans, pos0 + n - 1) : 0;
  // A tile: as many whole tokens as fill the native path's kMaxVecs row vectors (at least one).
  tile_tokens_ = std::max<int64_t>(1, NativeLanes::kMaxVecs * NativeLanes::kLanes / group_);
  rows_ = round_up(tile_tokens_ * group_, NativeLanes::kLanes);
  n_tiles_ = (n + tile_tokens_ - 1) / tile_tokens_;
  const int64_t items = n_items();
  qt_.assign(static_cast<size_t>(items * hd_ * rows_), 0.0f);
  ot_.assign(static_cast<size_t>(items * vd_ * rows_), 0.0f);
  max_.assign(static_cast<size_t>(items * rows_), -INFINITY);
  sum_.assign(static_cast<size_t>(items * rows_), 0.0f);
  // Padding rows attend nothing: no position is >= INT32_MAX and <= -1.
  lo_.assign(static_cast<size_t>(items * rows_), std::numeric_limits<int32_t>::max());
  hi_.assign(static_cast<size_t>(items * rows_), -1);
  key_lo_.assign(static_cast<size_t>(items), 0);
  key_hi_.assign(static_cast<size_t>(items), 0);
  for (int64_t tile = 0; tile < n_tiles_; ++tile) {
    const int64_t first = tile * tile_tokens_, last = std::min(n, first + tile_tokens_);
    // Positions before the tile's first attended one, and up to its last token.
    const int64_t min_pos = first_attended_pos(shape, pos0 + first);
    const int64_t key_lo = min_pos > 0 ? windowed + attended_keys(spans, min_pos - 1) : 0;
    const int64_t key_hi = windowed + attended_keys(spans, pos0 + last - 1);
    for (int64_t kvh = 0; kvh < shape.n_kv_heads; ++kvh) {
      const int64_t item = tile * shape.n_kv_heads + kvh;
      key_lo_[static_cast<size_t>(item)] = key_lo;
      key_hi_[static_cast<size_t>(item)] = key_hi;
      float* qt = &qt_[static_cast<size_t>(item * hd_ * rows_)];  // [hd, rows]
      for (int64_t i = first; i < last; ++i)
        for (int64_t g = 0; g < group_; ++g) {
          const int64_t r = (i - first) * group_ + g, h = kvh * group_ + g;
          const float* qh = q + (i * shape.n_heads + h) * hd_;  // [hd]
          for (int64_t d = 0; d < hd_; ++d) qt[d * rows_ + r] = qh[d];
          lo_[static_cast<size_t>(item * rows_ + r)] = static_cast<int32_t>(first_attended_pos(shape, pos0 + i));
          hi_[static_cast<size_t>(item * rows_ + r)] = static_cast<int32_t>(pos0 + i);
        }
    }
  }
}

void PrefillAttention::use_keys(std::span<const KvSpan> spans, int64_t first_key) {
  spans_.assign(spans.begin(), spans.end());
  span_first_key_.assign(1, first_key);
  for (const KvSpan& s : spans_) span_first_key_.push_back(span_first_key_.back() + s.n);
}

int64_t PrefillAttention::span_of_key(int64_t t) const {
  // The last span whose first key is <= t (empty spans share their successor's first key).
  const auto it = std::upper_bound(span_first_key_.begin(), span_first_key_.end(), t);
  return static_cast<int64_t>(it - span_first_key_.begin()) - 1;
}

void PrefillAttention::gather(int64_t t0, int64_t nb, int64_t kb, int64_t kvh, float* kf, float* vf,
                              float* wide, int32_t* pos) const {
  const DType type = shape_.kv_type;
  const size_t head_bytes = row_bytes(type, hd_);                      // one kv head's slice
  const size_t row = static_cast<size_t>(shape_.n_kv_heads) * head_bytes;  // one position
  const size_t offset = static_cast<size_t>(kvh) * head_bytes;
  // A q8_0 value slice narrower than the head (MLA) is dequantized whole into `wide`, then cut
  // to v_dim.
  const bool whole_v = vd_ < hd_ && type == DType::Q8_0;
  int64_t s = span_of_key(t0), j = t0 - span_first_key_[static_cast<size_t>(s)];
  for (int64_t i = 0; i < nb; ++i, ++j) {
    while (j >= spans_[static_cast<size_t>(s)].n) {
      j -= spans_[static_cast<size_t>(s)].n;
      ++s;
    }
    const KvSpan& span = spans_[static_cast<size_t>(s)];
    const uint8_t* k = span.k + static_cast<size_t>(j) * row + offset;
    const uint8_t* v = span.v + static_cast<size_t>(j) * row + offset;
    pos[i] = static_cast<int32_t>(span.pos0 + j);
    dequantize_row(type, k, kf + i * hd_, hd_);
    if (whole_v) {
      dequantize_row(type, v, wide, hd_);
      std::memcpy(vf + i * vd_, wide, static_cast<size_t>(vd_) * sizeof(float));
    } else {
      dequantize_row(type, v, vf + i * vd_, vd_);
    }
  }
  std::fill(kf + nb * hd_, kf + kb * hd_, 0.0f);
  std::fill(vf + nb * vd_, vf + kb * vd_, 0.0f);
  std::fill(pos + nb, pos + kb, -1);
}

template <class L>
void PrefillAttention::attend_with(int64_t item, int64_t step, std::vector<float>& scratch) {
  using V = typename L::V;
  constexpr int64_t kLanes = L::kLanes;
  const auto it = static_cast<size_t>(item);
  // The step's keys the item's rows may attend, from a block boundary.
  const int64_t t_begin = std::max(step * kPrefillStepKeys, key_lo_[it] / kPrefillBlockKeys * kPrefillBlockKeys);
  const int64_t t_end = std::min((step + 1) * kPrefillStepKeys, key_hi_[it]);
  if (t_begin >= t_end) return;
  if (t_begin < span_first_key_.front() || t_end > span_first_key_.back())
    fail("prefill attention: keys {} .. {} are not among the current keys {} .. {}", t_begin, t_end - 1,
         span_first_key_.front(), span_first_key_.back() - 1);
  const int64_t rows = rows_, n_vecs = rows_ / kLanes, kvh = item % shape_.n_kv_heads;
  // kf [32, hd] | vf [32, vd] | s [32, rows] (scores, then exp(s - max)) | rescale [rows] | wide [hd]
  scratch.resize(static_cast<size_t>(kPrefillBlockKeys * (hd_ + vd_ + rows) + rows + hd_));
  float* kf = scratch.data();
  float* vf = kf + kPrefillBlockKeys * hd_;
  float* s = vf + kPrefillBlockKeys * vd_;
  float* rescale = s + kPrefillBlockKeys * rows;
  float* wide = rescale + rows;
  int32_t pos[kPrefillBlockKeys];  // [32] the block's positions
  const float* qt = &qt_[it * static_cast<size_t>(hd_ * rows)];
  float* ot = &ot_[it * static_cast<size_t>(vd_ * rows)];
  float* max = &max_[it * static_cast<size_t>(rows)];
  float* sum = &sum_[it * static_cast<size_t>(rows)];
  const int32_t* lo = &lo_[it * static_cast<size_t>(rows)];
  const int32_t* hi = &hi_[it * static_cast<size_t>(rows)];
  // The positions every one of the item's tokens attends: from its last token's first to its
  // first token's last (padding rows do not count: their results are never read).
  const int64_t tile = item / shape_.n_kv_heads;
  const int32_t lo_max = lo[(std::min(n_tokens_, (tile + 1) * tile_tokens_) - 1 - tile * tile_tokens_) * group_];
  const int32_t hi_min = hi[0];
  const V minus_inf = L::set1(-INFINITY), zero = L::set1(0.0f), one = L::set1(1.0f);
  for (int64_t t0 = t_begin; t0 < t_end; t0 += kPrefillBlockKeys) {
    const int64_t nb = std::min(kPrefillBlockKeys, t_end - t0), kb = round_up(nb, L::kBlockKeys);
    gather(t0, nb, kb, kvh, kf, vf, wide, pos);
    for_vector_groups<L::kMaxVecs>(n_vecs, [&]<int NV>(int64_t v0) {
      block_scores<L, NV>(kf, qt, hd_, rows, v0, kb, scale_, s);
    });
    if (shape_.softcap > 0)
      for (int64_t i = 0; i < kb * rows; ++i) s[i] = shape_.softcap * std::tanh(s[i] / shape_.softcap);
    // Online softmax per row: scores of keys a row does not attend become -inf and their
    // weights 0; a row whose max rises rescales its sum and accumulator by exp(old - new). When
    // every row of the item attends every key of the block (all but the blocks at the diagonal
    // and the window's edge) the masks are skipped: they would select every score and weight.
    const bool all_attended = nb == kb && pos[0] >= lo_max && pos[nb - 1] <= hi_min;
    for (int64_t v = 0; v < n_vecs; ++v) {
      const int64_t lane0 = v * kLanes;
      V block_max = minus_inf;
      for (int64_t j = 0; j < kb; ++j) {
        V sj = L::load(s + j * rows + lane0);
        if (!all_attended) {
          sj = L::select(L::excluded(pos[j], lo + lane0, hi + lane0), minus_inf, sj);
          L::store(s + j * rows + lane0, sj);
        }
        block_max = L::max(block_max, sj);
      }
      const V old_max = L::load(max + lane0);
      const typename L::M rose = L::gt(block_max, old_max);
      const V new_max = L::select(rose, block_max, old_max);
      const V r = L::select(rose, L::exp(L::sub(old_max, new_max)), one);
      V total = L::mul(L::load(sum + lane0), r);
      for (int64_t j = 0; j < kb; ++j) {
        const V sj = L::load(s + j * rows + lane0);
        V p = L::exp(L::sub(sj, new_max));
        if (!all_attended) p = L::select(L::gt(sj, minus_inf), p, zero);
        L::store(s + j * rows + lane0, p);
        total = L::add(total, p);
      }
      L::store(max + lane0, new_max);
      L::store(sum + lane0, total);
      L::store(rescale + lane0, r);
    }
    for (int64_t c0 = 0; c0 < vd_; c0 += L::kBlockCols) {
      if (c0 + L::kBlockCols <= vd_) {
        for_vector_groups<L::kMaxVecs>(n_vecs, [&]<int NV>(int64_t v0) {
          block_values<L, L::kBlockCols, NV>(s, vf, vd_, rows, v0, c0, kb, rescale, ot);
        });
      } else {
        for (int64_t c = c0; c < vd_; ++c)
          for_vector_groups<L::kMaxVecs>(n_vecs, [&]<int NV>(int64_t v0) {
            block_values<L, 1, NV>(s, vf, vd_, rows, v0, c, kb, rescale, ot);
          });
      }
    }
  }
}

void PrefillAttention::attend(int64_t item, int64_t step, std::vector<float>& scratch) {
  attend_with<NativeLanes>(item, step, scratch);
}

void PrefillAttention::attend_ref(int64_t item, int64_t step, std::vector<float>& scratch) {
  attend_with<TwinLanes>(item, step, scratch);
}

void PrefillAttention::finish(int64_t item, float* out) const {
  const int64_t tile = item / shape_.n_kv_heads, kvh = item % shape_.n_kv_heads;
  const int64_t first = tile * tile_tokens_, last = std::min(n_tokens_, first + tile_tokens_);
  const float* ot = &ot_[static_cast<size_t>(item * vd_ * rows_)];  // [vd, rows]
  for (int64_t i = first; i < last; ++i)
    for (int64_t g = 0; g < group_; ++g) {
      const int64_t r = (i - first) * group_ + g, h = kvh * group_ + g;
      const float total = sum_[static_cast<size_t>(item * rows_ + r)];
      const float inv_sum = total > 0 ? 1.0f / total : 0.0f;
      float* o = out + (i * shape_.n_heads + h) * vd_;  // [vd]
      for (int64_t c = 0; c < vd_; ++c) o[c] = ot[c * rows_ + r] * inv_sum;
    }
}

}  // namespace flashmem
