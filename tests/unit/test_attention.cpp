// Decode attention: the blocked one-pass kernel against its two-pass scalar twin on random K/V,
// and the invariant paged KV relies on: how the positions are split into spans never changes a
// bit of the result.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <random>

#include "model/attention.h"
#include "tensor/kernels.h"

namespace flashmem {
namespace {

constexpr double kUnitRoundoff = 0x1p-24;  // f32

// K and V of positions [0, n_pos) for all kv heads, in the cache type; values uniform in [-1, 1].
struct KvHistory {
  AttentionShape shape;
  int64_t n_pos = 0;
  size_t row_bytes = 0;           // one position: n_kv_heads * head_dim elements
  std::vector<uint8_t> k, v;      // [n_pos, n_kv_heads, head_dim] in shape.kv_type
  std::vector<float> k_f32, v_f32;  // the same values as f32 (for the error bound)

  KvHistory(const AttentionShape& s, int64_t n, uint32_t seed) : shape(s), n_pos(n) {
    const int64_t elems = n * s.n_kv_heads * s.head_dim;
    const size_t elem = s.kv_type == DType::F16 ? 2 : 4;
    row_bytes = static_cast<size_t>(s.n_kv_heads * s.head_dim) * elem;
    std::mt19937 rng(seed);
    std::uniform_real_distribution<float> dist(-1.0f, 1.0f);
    for (std::vector<float>* dst : {&k_f32, &v_f32}) {
      dst->resize(static_cast<size_t>(elems));
      for (float& x : *dst) x = dist(rng);
    }
    k.resize(static_cast<size_t>(elems) * elem);
    v.resize(k.size());
    if (s.kv_type == DType::F16) {
      f32_to_f16_row(k_f32.data(), reinterpret_cast<uint16_t*>(k.data()), elems);
      f32_to_f16_row(v_f32.data(), reinterpret_cast<uint16_t*>(v.data()), elems);
      f16_to_f32_row(reinterpret_cast<const uint16_t*>(k.data()), k_f32.data(), elems);
      f16_to_f32_row(reinterpret_cast<const uint16_t*>(v.data()), v_f32.data(), elems);
    } else {
      std::memcpy(k.data(), k_f32.data(), k.size());
      std::memcpy(v.data(), v_f32.data(), v.size());
    }
  }

  KvSpan span(int64_t pos0, int64_t n) const {
    return {pos0, n, k.data() + pos0 * row_bytes, v.data() + pos0 * row_bytes};
  }
};

// [first, last) cut into spans of random lengths 1 .. max_len.
void cut(const KvHistory& h, int64_t first, int64_t last, int64_t max_len, std::mt19937& rng,
         std::vector<KvSpan>* out) {
  std::uniform_int_distribution<int64_t> len(1, max_len);
  for (int64_t p = first; p < last;) {
    const int64_t n = std::min(len(rng), last - p);
    out->push_back(h.span(p, n));
    p += n;
  }
}

std::vector<float> random_query(int64_t n, float scale, uint32_t seed) {
  std::mt19937 rng(seed);
  std::uniform_real_distribution<float> dist(-scale, scale);
  std::vector<float> q(static_cast<size_t>(n));
  for (float& x : q) x = dist(rng);
  return q;
}

struct Result {
  std::vector<float> out;    // [group, head_dim]
  std::vector<float> probs;  // [group, n_keys]
};

Result attend(bool ref, const AttentionShape& shape, std::span<const KvSpan> spans, int64_t kv_head,
              int64_t max_pos, const std::vector<float>& q, bool want_probs) {
  const int64_t group = shape.n_heads / shape.n_kv_heads;
  Result r;
  r.out.resize(static_cast<size_t>(group * shape.head_dim));
  if (want_probs) r.probs.resize(static_cast<size_t>(group * attended_keys(spans, max_pos)));
  std::vector<float> scratch;
  float* probs = want_probs ? r.probs.data() : nullptr;
  if (ref) {
    attend_kv_head_ref(shape, spans, kv_head, max_pos, q.data(), r.out.data(), scratch, probs);
  } else {
    attend_kv_head(shape, spans, kv_head, max_pos, q.data(), r.out.data(), scratch, probs);
  }
  return r;
}

bool bit_equal(const std::vector<float>& a, const std::vector<float>& b) {
  return a.size() == b.size() && std::memcmp(a.data(), b.data(), a.size() * sizeof(float)) == 0;
}

struct Case {
  DType kv_type;
  int64_t head_dim, group, n_pos;
};

std::vector<Case> cases() {
  std::vector<Case> all;
  for (DType type : {DType::F16, DType::F32})
    for (int64_t hd : {64, 128, 8, 24})  // 8, 24: odd multiples of 8 (AVX-512 uses 8-lane chunks)
      for (int64_t group : {1, 2, 3, 4, 8})
        for (int64_t n_pos : {1, 5, 8, 9, 23, 64, 300, 1029}) all.push_back({type, hd, group, n_pos});
  return all;
}

std::string name(const Case& c) {
  return std::string(dtype_info(c.kv_type).name) + " hd " + std::to_string(c.head_dim) + " group " +
         std::to_string(c.group) + " n_pos " + std::to_string(c.n_pos);
}

// Blocked kernel vs the two-pass reference. Error bound per output element, first order in u:
// - scores: both sum hd products in different orders, |Δs_t| <= 2·hd·u·Σ_i|q_i k_ti|·scale =: δs;
//   a probability p_t = exp(s_t - m)/Σ exp(s - m) then moves by <= p_t·(2δs + ε_exp) relative,
//   ε_exp = 1e-6 covering the exp polynomial (< 2e-8 truncation + a few ulp of rounding) on both
//   sides and the rescale factors exp(m_old - m_new) (std::exp, 1 ulp each);
// - outputs: Σ_t p_t v_t summed in different orders and normalized before (ref) or after (fast)
//   the sum, and rescaled once per raised max: <= 3·(n_keys + 8)·u·Σ_t p_t|v_t|.
// With Σ p_t = 1 and |v| <= vmax: |Δout| <= vmax·(2δs + ε_exp + 3·(n_keys + 8)·u).
TEST(Attention, BlockedMatchesReferenceOnRandomInputs) {
  double worst_ratio = 0;  // max |Δout| / bound over all cases, reported
  uint32_t seed = 1;
  for (const Case& c : cases()) {
    const int64_t n_kv_heads = 2;
    const AttentionShape shape{c.group * n_kv_heads, n_kv_heads, c.head_dim, c.kv_type};
    const KvHistory h(shape, c.n_pos, seed++);
    const float scale = 1.0f / std::sqrt(static_cast<float>(c.head_dim));
    std::mt19937 rng(seed++);
    for (int64_t max_pos : {c.n_pos - 1, c.n_pos / 2, int64_t{0}}) {
      for (int64_t max_len : {c.n_pos, int64_t{1}, int64_t{7}, int64_t{16}, int64_t{100}}) {
        std::vector<KvSpan> spans;
        cut(h, 0, c.n_pos, max_len, rng, &spans);
        for (float q_scale : {1.0f, 8.0f}) {  // 8: peaked softmax, the running max moves late
          const int64_t kv_head = 1;
          const std::vector<float> q = random_query(c.group * c.head_dim, q_scale, seed++);
          const Result fast = attend(false, shape, spans, kv_head, max_pos, q, true);
          const Result ref = attend(true, shape, spans, kv_head, max_pos, q, true);
          const int64_t n_keys = attended_keys(spans, max_pos);
          for (int64_t g = 0; g < c.group; ++g) {
            double ds = 0, vmax = 0;
            for (int64_t t = 0; t <= max_pos; ++t) {
              const int64_t base = (t * n_kv_heads + kv_head) * c.head_dim;
              double abs_dot = 0;
              for (int64_t i = 0; i < c.head_dim; ++i) {
                abs_dot += std::fabs(q[g * c.head_dim + i] * h.k_f32[base + i]);
                vmax = std::max(vmax, std::fabs(static_cast<double>(h.v_f32[base + i])));
              }
              ds = std::max(ds, 2.0 * c.head_dim * kUnitRoundoff * abs_dot * scale);
            }
            const double bound = vmax * (2 * ds + 1e-6 + 3.0 * (n_keys + 8) * kUnitRoundoff);
            for (int64_t i = 0; i < c.head_dim; ++i) {
              const size_t at = g * c.head_dim + i;
              const double err = std::fabs(fast.out[at] - ref.out[at]);
              ASSERT_LE(err, bound) << name(c) << " max_pos " << max_pos << " g " << g;
              worst_ratio = std::max(worst_ratio, err / bound);
            }
            // Probabilities: relative (2δs + ε_exp) plus the two sums' orders, absolute as p <= 1.
            const double p_bound = 2 * ds + 1e-6 + 2.0 * (n_keys + 8) * kUnitRoundoff;
            for (int64_t t = 0; t < n_keys; ++t) {
              const size_t at = g * n_keys + t;
              ASSERT_NEAR(fast.probs[at], ref.probs[at], p_bound) << name(c) << " t " << t;
            }
          }
        }
      }
    }
  }
  std::printf("worst |fast - ref| / bound: %.3g\n", worst_ratio);
}

// Paged KV reads every page as its own span; the contiguous cache reads one span. The same keys
// must give bit-identical outputs and probabilities however they are split, and with or without
// the probs side output. Also for sparse histories (pages with gaps), split per page or per run.
TEST(Attention, SpanSplitDoesNotChangeAnyBit) {
  uint32_t seed = 100;
  for (const Case& c : cases()) {
    if (c.n_pos < 9) continue;
    const AttentionShape shape{c.group * 2, 2, c.head_dim, c.kv_type};
    const KvHistory h(shape, c.n_pos, seed++);
    std::mt19937 rng(seed++);
    const std::vector<float> q = random_query(c.group * c.head_dim, 4.0f, seed++);
    const int64_t max_pos = c.n_pos - 1;
    const std::vector<KvSpan> one{h.span(0, c.n_pos)};
    const Result want = attend(false, shape, one, 0, max_pos, q, true);
    EXPECT_TRUE(bit_equal(attend(false, shape, one, 0, max_pos, q, false).out, want.out)) << name(c);
    for (int64_t max_len : {1, 3, 8, 13, 16}) {
      std::vector<KvSpan> many;
      cut(h, 0, c.n_pos, max_len, rng, &many);
      const Result got = attend(false, shape, many, 0, max_pos, q, true);
      EXPECT_TRUE(bit_equal(got.out, want.out)) << name(c) << " max_len " << max_len;
      EXPECT_TRUE(bit_equal(got.probs, want.probs)) << name(c) << " max_len " << max_len;
    }
    // Sparse: pages of 4 positions, every other page dropped; per-page spans vs merged runs
    // (here runs are single pages separated by gaps, merged where two kept pages touch).
    std::vector<KvSpan> per_page, runs;
    for (int64_t p = 0; p * 4 < c.n_pos; ++p) {
      if (p % 3 == 1) continue;  // kept pages 0, 2, 3, 5, 6, ...: some adjacent, some not
      const int64_t first = p * 4, n = std::min<int64_t>(4, c.n_pos - first);
      per_page.push_back(h.span(first, n));
      if (!runs.empty() && runs.back().pos0 + runs.back().n == first) {
        runs.back().n += n;
      } else {
        runs.push_back(h.span(first, n));
      }
    }
    const Result a = attend(false, shape, per_page, 1, max_pos, q, true);
    const Result b = attend(false, shape, runs, 1, max_pos, q, true);
    EXPECT_TRUE(bit_equal(a.out, b.out)) << name(c);
    EXPECT_TRUE(bit_equal(a.probs, b.probs)) << name(c);
  }
}

// No key at or before max_pos: the output is zero (as the reference leaves it).
TEST(Attention, NoKeysGivesZeros) {
  const AttentionShape shape{4, 2, 64, DType::F16};
  const KvHistory h(shape, 16, 7);
  const std::vector<KvSpan> spans{h.span(8, 8)};
  const std::vector<float> q = random_query(2 * 64, 1.0f, 8);
  const Result r = attend(false, shape, spans, 0, 7, q, false);
  EXPECT_TRUE(std::all_of(r.out.begin(), r.out.end(), [](float x) { return x == 0.0f; }));
}

}  // namespace
}  // namespace flashmem
