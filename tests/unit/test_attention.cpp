// Decode attention: the chunked kernel (all heads, two passes per 256-key chunk in 32-key blocks)
// against its two-pass per-kv-head scalar twin on random K/V, and the invariant paged KV relies
// on: how the positions are split into spans, or the chunks among threads, never changes a bit of
// the result.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <random>
#include <thread>

#include "model/attention.h"
#include "tensor/convert.h"
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
    row_bytes = flashmem::row_bytes(s.kv_type, s.n_kv_heads * s.head_dim);
    std::mt19937 rng(seed);
    std::uniform_real_distribution<float> dist(-1.0f, 1.0f);
    for (std::vector<float>* dst : {&k_f32, &v_f32}) {
      dst->resize(static_cast<size_t>(elems));
      for (float& x : *dst) x = dist(rng);
    }
    k.resize(static_cast<size_t>(n) * row_bytes);
    v.resize(k.size());
    // Stored in the cache type, then the f32 copies set to the stored values (what attention sees).
    quantize_row(s.kv_type, k_f32.data(), k.data(), elems);
    quantize_row(s.kv_type, v_f32.data(), v.data(), elems);
    dequantize_row(s.kv_type, k.data(), k_f32.data(), elems);
    dequantize_row(s.kv_type, v.data(), v_f32.data(), elems);
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
  std::vector<float> out;    // [n_heads, v_dim]
  std::vector<float> probs;  // [n_heads, n_keys] (empty when not wanted)
};

// One token's attention, all heads: attend_token, or attend_kv_head_ref per kv head.
Result attend(bool ref, const AttentionShape& shape, std::span<const KvSpan> spans,
              int64_t max_pos, const std::vector<float>& q, bool want_probs) {
  const int64_t group = shape.n_heads / shape.n_kv_heads, hd = shape.head_dim, vd = value_dim(shape);
  const int64_t n_keys = attended_keys(spans, max_pos, first_attended_pos(shape, max_pos));
  Result r;
  r.out.resize(static_cast<size_t>(shape.n_heads * vd));
  if (want_probs) r.probs.resize(static_cast<size_t>(shape.n_heads * n_keys));
  std::vector<float> scratch;
  if (!ref) {
    attend_token(shape, spans, max_pos, q.data(), r.out.data(), scratch,
                 want_probs ? r.probs.data() : nullptr);
    return r;
  }
  for (int64_t kvh = 0; kvh < shape.n_kv_heads; ++kvh)
    attend_kv_head_ref(shape, spans, kvh, max_pos, &q[kvh * group * hd], &r.out[kvh * group * vd],
                       scratch, want_probs ? &r.probs[kvh * group * n_keys] : nullptr);
  return r;
}

// The query as the kernels use it: for a q8_0 cache quantized to q8_0 (the keys meet it in integer
// dot products), else unchanged.
std::vector<float> query_seen(const AttentionShape& shape, const std::vector<float>& q) {
  if (shape.kv_type != DType::Q8_0) return q;
  std::vector<BlockQ8_0> blocks(q.size() / kQ8Block);  // [n_heads, head_dim / 32]
  std::vector<float> seen(q.size());                   // [n_heads, head_dim]
  quantize_row(DType::Q8_0, q.data(), blocks.data(), static_cast<int64_t>(q.size()));
  dequantize_row(DType::Q8_0, blocks.data(), seen.data(), static_cast<int64_t>(q.size()));
  return seen;
}

bool bit_equal(const std::vector<float>& a, const std::vector<float>& b) {
  return a.size() == b.size() && std::memcmp(a.data(), b.data(), a.size() * sizeof(float)) == 0;
}

struct Case {
  DType kv_type;
  int64_t head_dim, n_kv_heads, group, n_pos;
};

// n_pos 300, 1029, 2100: several chunks (kAttentionChunkKeys = 256) with a short last one.
// Head dims and groups cover both vector widths' remainders: the AVX2 kernel takes 8 values per
// vector, 32 columns per V step and sets of up to 3 heads; the AVX-512 one 16 values (hd 8 and 24
// end in a masked vector), 64 columns per V step (hd 80, 96: one or two single vectors after it;
// q8_0: one 32-column block per step) and sets of up to 4 heads (groups 5-8: a set of 4, then of
// 1-4). hd 12: the scalar chunk path.
std::vector<Case> cases() {
  std::vector<Case> all;
  for (DType type : {DType::F16, DType::F32, DType::Q8_0})
    for (int64_t hd : {64, 128, 8, 24, 12, 80, 96})
      for (int64_t n_kv_heads : {1, 2})
        for (int64_t group : {1, 2, 3, 4, 5, 6, 7, 8})
          for (int64_t n_pos : {1, 5, 8, 9, 23, 64, 300, 1029, 2100}) {
            if (n_pos == 2100 && (hd != 64 || group == 8)) continue;  // keep the test quick
            // hd 80, 96 and groups 5-7 add remainders, not lengths: a few of them suffice
            const bool remainder_case = hd == 80 || hd == 96 || (group >= 5 && group <= 7);
            if (remainder_case && n_pos != 9 && n_pos != 300) continue;
            if (type == DType::Q8_0 && hd % kQ8Block != 0) continue;  // q8_0 slices are whole blocks
            all.push_back({type, hd, n_kv_heads, group, n_pos});
          }
  return all;
}

std::string name(const Case& c) {
  return std::string(dtype_info(c.kv_type).name) + " hd " + std::to_string(c.head_dim) +
         " kv_heads " + std::to_string(c.n_kv_heads) + " group " + std::to_string(c.group) +
         " n_pos " + std::to_string(c.n_pos);
}

// Chunked kernel vs the two-pass reference. Error bound per output element, first order in u:
// - scores: both sum hd products in different orders, |Δs_t| <= 2·hd·u·Σ_i|q_i k_ti|·scale =: δs;
//   a probability p_t = exp(s_t - m)/Σ exp(s - m) then moves by <= p_t·(2δs + ε_exp) relative,
//   ε_exp = 1e-6 covering the exp polynomial (< 2e-8 truncation + a few ulp of rounding) on both
//   sides and the rescale factors exp(m_old - m_new) of the online softmax and of the merge
//   (std::exp, 1 ulp each);
// - outputs: Σ_t p_t v_t summed in different orders and normalized before (ref) or after (fast)
//   the sum, rescaled once per raised max and once per chunk in the merge:
//   <= 3·(n_keys + 8)·u·Σ_t p_t|v_t|.
// With Σ p_t = 1 and |v| <= vmax: |Δout| <= vmax·(2δs + ε_exp + 3·(n_keys + 8)·u). The observed
// error is printed: ~3% of the bound, the bound being a worst case over summation orders.
TEST(Attention, ChunkedMatchesReferenceOnRandomInputs) {
  double worst_ratio = 0;  // max |Δout| / bound over all cases
  uint32_t seed = 1;
  for (const Case& c : cases()) {
    const AttentionShape shape{c.group * c.n_kv_heads, c.n_kv_heads, c.head_dim, c.kv_type};
    const KvHistory h(shape, c.n_pos, seed++);
    const float scale = 1.0f / std::sqrt(static_cast<float>(c.head_dim));
    std::mt19937 rng(seed++);
    for (int64_t max_pos : {c.n_pos - 1, c.n_pos / 2, int64_t{0}}) {
      for (int64_t max_len : {c.n_pos, int64_t{1}, int64_t{7}, int64_t{16}, int64_t{100}}) {
        std::vector<KvSpan> spans;
        cut(h, 0, c.n_pos, max_len, rng, &spans);
        for (float q_scale : {1.0f, 8.0f}) {  // 8: peaked softmax, the running max moves late
          const std::vector<float> q = random_query(shape.n_heads * c.head_dim, q_scale, seed++);
          const Result fast = attend(false, shape, spans, max_pos, q, true);
          const Result ref = attend(true, shape, spans, max_pos, q, true);
          const int64_t n_keys = attended_keys(spans, max_pos);
          for (int64_t head = 0; head < shape.n_heads; ++head) {
            const int64_t kvh = head / c.group;
            double ds = 0, vmax = 0;
            for (int64_t t = 0; t <= max_pos; ++t) {
              const int64_t base = (t * c.n_kv_heads + kvh) * c.head_dim;
              double abs_dot = 0;
              for (int64_t i = 0; i < c.head_dim; ++i) {
                abs_dot += std::fabs(q[head * c.head_dim + i] * h.k_f32[base + i]);
                vmax = std::max(vmax, std::fabs(static_cast<double>(h.v_f32[base + i])));
              }
              ds = std::max(ds, 2.0 * c.head_dim * kUnitRoundoff * abs_dot * scale);
            }
            const double bound = vmax * (2 * ds + 1e-6 + 3.0 * (n_keys + 8) * kUnitRoundoff);
            for (int64_t i = 0; i < c.head_dim; ++i) {
              const size_t at = head * c.head_dim + i;
              const double err = std::fabs(fast.out[at] - ref.out[at]);
              ASSERT_LE(err, bound) << name(c) << " max_pos " << max_pos << " head " << head;
              worst_ratio = std::max(worst_ratio, err / bound);
            }
            // Probabilities: relative (2δs + ε_exp) plus the two sums' orders, absolute as p <= 1.
            const double p_bound = 2 * ds + 1e-6 + 2.0 * (n_keys + 8) * kUnitRoundoff;
            for (int64_t t = 0; t < n_keys; ++t) {
              const size_t at = head * n_keys + t;
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
// must give bit-identical outputs and probabilities however they are split, with or without the
// probs side output, and whichever thread ran which chunk in which order. Also for sparse
// histories (pages with gaps), split per page or per run of adjacent pages.
TEST(Attention, SpanSplitAndChunkOrderDoNotChangeAnyBit) {
  uint32_t seed = 100;
  for (const Case& c : cases()) {
    if (c.n_pos < 9) continue;
    const AttentionShape shape{c.group * c.n_kv_heads, c.n_kv_heads, c.head_dim, c.kv_type};
    const KvHistory h(shape, c.n_pos, seed++);
    std::mt19937 rng(seed++);
    const std::vector<float> q = random_query(shape.n_heads * c.head_dim, 4.0f, seed++);
    const int64_t max_pos = c.n_pos - 1;
    const std::vector<KvSpan> one{h.span(0, c.n_pos)};
    const Result want = attend(false, shape, one, max_pos, q, true);
    EXPECT_TRUE(bit_equal(attend(false, shape, one, max_pos, q, false).out, want.out)) << name(c);
    for (int64_t max_len : {1, 3, 8, 13, 16, 300}) {
      std::vector<KvSpan> many;
      cut(h, 0, c.n_pos, max_len, rng, &many);
      const Result got = attend(false, shape, many, max_pos, q, true);
      EXPECT_TRUE(bit_equal(got.out, want.out)) << name(c) << " max_len " << max_len;
      EXPECT_TRUE(bit_equal(got.probs, want.probs)) << name(c) << " max_len " << max_len;
    }
    // Chunks computed last to first, each with its own scratch, as threads would, each naming the
    // one before it as the next (a prefetch hint: attend_token names the one after).
    const int64_t n_chunks = attention_chunks(c.n_pos);
    const int64_t stride = attention_partial_floats(shape);
    std::vector<float> partials(static_cast<size_t>(n_chunks * stride));  // [n_chunks, stride]
    Result reversed;
    reversed.out.resize(want.out.size());
    reversed.probs.resize(want.probs.size());
    for (int64_t chunk = n_chunks - 1; chunk >= 0; --chunk) {
      std::vector<float> scratch;
      attend_chunk(shape, one, max_pos, chunk, q.data(), &partials[chunk * stride], scratch,
                   reversed.probs.data(), chunk - 1);
    }
    attend_merge(shape, partials.data(), n_chunks, reversed.out.data(), reversed.probs.data(), c.n_pos);
    EXPECT_TRUE(bit_equal(reversed.out, want.out)) << name(c);
    EXPECT_TRUE(bit_equal(reversed.probs, want.probs)) << name(c);
    // Sparse: pages of 4 positions, every third page dropped; per-page spans vs merged runs.
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
    const Result a = attend(false, shape, per_page, max_pos, q, true);
    const Result b = attend(false, shape, runs, max_pos, q, true);
    EXPECT_TRUE(bit_equal(a.out, b.out)) << name(c);
    EXPECT_TRUE(bit_equal(a.probs, b.probs)) << name(c);
  }
}

// index_keys + the indexed attend_chunk: spans that hold no attended key (empty, wholly before a
// sliding window's first position, wholly after max_pos) and spans cut anywhere leave every
// output bit as one contiguous span gives, chunk by chunk in any order; the index counts the
// keys attended_keys counts and its span starts are the running sums of the spans' keys.
TEST(Attention, KeyIndexFindsEveryChunkAcrossEmptyAndWindowedSpans) {
  uint32_t seed = 2600;
  for (int64_t window : {0, 1, 37, 300})
    for (int64_t n_pos : {1, 255, 256, 257, 1029}) {
      const AttentionShape shape{6, 2, 64, DType::F16, 0.0f, 0.0f, window};
      const KvHistory h(shape, n_pos + 50, seed++);  // 50 positions past max_pos
      const int64_t max_pos = n_pos - 1;
      std::mt19937 rng(seed++);
      std::vector<KvSpan> cuts, spans;
      cut(h, 0, n_pos + 50, 9, rng, &cuts);
      for (const KvSpan& c : cuts) {  // an empty span before every third one
        if (spans.size() % 3 == 0) spans.push_back({c.pos0, 0, c.k, c.v});
        spans.push_back(c);
      }
      const std::vector<KvSpan> one{h.span(0, n_pos + 50)};
      KeyIndex index, index_one;
      index_keys(shape, spans, max_pos, index);
      index_keys(shape, one, max_pos, index_one);
      const int64_t n_keys = attended_keys(spans, max_pos, first_attended_pos(shape, max_pos));
      ASSERT_EQ(index.n_keys, n_keys);
      ASSERT_EQ(index_one.n_keys, n_keys);
      ASSERT_EQ(index.span_first.size(), spans.size() + 1);
      for (size_t i = 0; i < spans.size(); ++i)
        ASSERT_EQ(index.span_first[i + 1] - index.span_first[i],
                  attended_keys(std::span(&spans[i], 1), max_pos, first_attended_pos(shape, max_pos)));
      const std::vector<float> q = random_query(shape.n_heads * 64, 4.0f, seed++);
      const int64_t n_chunks = attention_chunks(n_keys), stride = attention_partial_floats(shape);
      std::vector<float> want(static_cast<size_t>(n_chunks * stride)), got(want.size()), scratch;
      std::vector<float> want_scores(static_cast<size_t>(shape.n_heads * n_keys)), got_scores(want_scores.size());
      for (int64_t c = 0; c < n_chunks; ++c)
        attend_chunk(shape, one, max_pos, c, q.data(), &want[c * stride], scratch, want_scores.data());
      for (int64_t c = n_chunks - 1; c >= 0; --c)  // last to first, naming the one before as next
        attend_chunk(shape, spans, index, c, q.data(), &got[c * stride], scratch, got_scores.data(), c - 1);
      EXPECT_TRUE(bit_equal(got, want)) << "window " << window << " n_pos " << n_pos;
      EXPECT_TRUE(bit_equal(got_scores, want_scores)) << "window " << window << " n_pos " << n_pos;
    }
}

// A q8_0 cache: every score is the integer dot product of the keys' codes with the query's q8_0
// codes per 32-value block, Σ_b fma(Σ_i k_bi q_bi, d_k,b · d_q,b) in block order, times the
// scale, bit for bit (computed here from the blocks), whatever the key count (non-multiples of
// 32 and 256), span cuts and the split of chunks between 2 threads; the output equals the
// 1-thread attend_token bit for bit, and the scalar twin within the rounding bound above.
TEST(Attention, Q8ScoresAreIntegerBlockDotsOnAnyThreadSplit) {
  uint32_t seed = 1300;
  for (int64_t hd : {32, 64, 96})
    for (int64_t group : {1, 3, 4, 6})
      for (int64_t n_pos : {1, 31, 33, 255, 257, 700, 1029}) {
        const AttentionShape shape{group * 2, 2, hd, DType::Q8_0};
        const KvHistory h(shape, n_pos, seed++);
        std::mt19937 rng(seed++);
        std::vector<KvSpan> spans;
        cut(h, 0, n_pos, 13, rng, &spans);
        const std::vector<float> q = random_query(shape.n_heads * hd, 4.0f, seed++);
        const int64_t n_blocks = hd / kQ8Block;
        std::vector<BlockQ8_0> q8(static_cast<size_t>(shape.n_heads * n_blocks));  // [n_heads, n_blocks]
        quantize_row(DType::Q8_0, q.data(), q8.data(), shape.n_heads * hd);
        // Chunks alternate between two threads, each with its own scratch.
        const int64_t n_chunks = attention_chunks(n_pos), stride = attention_partial_floats(shape);
        std::vector<float> partials(static_cast<size_t>(n_chunks * stride));   // [n_chunks, stride]
        std::vector<float> scores(static_cast<size_t>(shape.n_heads * n_pos));  // [n_heads, n_pos]
        auto run = [&](int64_t first) {
          std::vector<float> scratch;
          for (int64_t c = first; c < n_chunks; c += 2)
            attend_chunk(shape, spans, n_pos - 1, c, q.data(), &partials[c * stride], scratch, scores.data(),
                         c + 2 < n_chunks ? c + 2 : -1);
        };
        std::thread other(run, 1);
        run(0);
        other.join();
        const float scale = 1.0f / std::sqrt(static_cast<float>(hd));
        for (int64_t head = 0; head < shape.n_heads; ++head)
          for (int64_t t = 0; t < n_pos; ++t) {
            const auto* k =  // [n_blocks] key t's slice for this head
                reinterpret_cast<const BlockQ8_0*>(h.k.data() + t * h.row_bytes) + (head / group) * n_blocks;
            const BlockQ8_0* qh = &q8[head * n_blocks];
            float dot = 0.0f;
            for (int64_t b = 0; b < n_blocks; ++b) {
              int32_t sum = 0;
              for (int i = 0; i < kQ8Block; ++i) sum += int32_t{k[b].qs[i]} * int32_t{qh[b].qs[i]};
              dot = std::fma(static_cast<float>(sum), fp16_to_f32(k[b].d) * fp16_to_f32(qh[b].d), dot);
            }
            const float got = scores[head * n_pos + t], want = dot * scale;
            ASSERT_EQ(std::memcmp(&got, &want, sizeof(float)), 0)
                << "hd " << hd << " group " << group << " n_pos " << n_pos << " head " << head << " key " << t
                << ": " << got << " vs " << want;
          }
        std::vector<float> out(static_cast<size_t>(shape.n_heads * hd));  // [n_heads, hd]
        attend_merge(shape, partials.data(), n_chunks, out.data());
        EXPECT_TRUE(bit_equal(out, attend(false, shape, spans, n_pos - 1, q, false).out)) << n_pos;
        // Twin: the same scores, so only the softmax and Σ p·v orders differ (see the bound above).
        const std::vector<float> ref = attend(true, shape, spans, n_pos - 1, q, false).out;
        for (size_t i = 0; i < out.size(); ++i)
          ASSERT_NEAR(out[i], ref[i], 1e-6 + 3.0 * (n_pos + 8) * kUnitRoundoff) << "n_pos " << n_pos << " at " << i;
      }
}

// No key at or before max_pos: the output is zero (as the reference leaves it).
TEST(Attention, NoKeysGivesZeros) {
  const AttentionShape shape{4, 2, 64, DType::F16};
  const KvHistory h(shape, 16, 7);
  const std::vector<KvSpan> spans{h.span(8, 8)};
  const std::vector<float> q = random_query(4 * 64, 1.0f, 8);
  const Result r = attend(false, shape, spans, 7, q, false);
  EXPECT_TRUE(std::all_of(r.out.begin(), r.out.end(), [](float x) { return x == 0.0f; }));
}

// Sliding windows, a custom score scale and soft-capping (gemma2, mistral): the fast kernel and
// the scalar twin against softmax(cap · tanh(scale · q·k / cap)) over the window's positions
// computed directly in double from the stored values (both within 1e-5 of it: f32 sums of at
// most 128 products and 700 keys), and bit-identical however the positions are split into spans.
TEST(Attention, SlidingWindowScaleAndSoftCapMatchADirectComputation) {
  uint32_t seed = 500;
  for (int64_t hd : {64, 24, 12}) {
    for (int64_t window : {1, 37, 300, 5000}) {
      for (float softcap : {0.0f, 1.5f}) {
        for (float scale : {0.0f, 0.05f}) {
          const AttentionShape shape{4, 2, hd, DType::F32, scale, softcap, window};
          const int64_t n_pos = 700, group = 2;
          const KvHistory h(shape, n_pos, seed++);
          std::mt19937 rng(seed++);
          const std::vector<float> q = random_query(shape.n_heads * hd, 4.0f, seed++);
          for (int64_t max_pos : {n_pos - 1, int64_t{20}, int64_t{0}}) {
            std::vector<KvSpan> spans, other;
            cut(h, 0, n_pos, 100, rng, &spans);
            cut(h, 0, n_pos, 7, rng, &other);
            const Result fast = attend(false, shape, spans, max_pos, q, true);
            const Result ref = attend(true, shape, spans, max_pos, q, true);
            EXPECT_TRUE(bit_equal(fast.out, attend(false, shape, other, max_pos, q, true).out));
            const int64_t first = std::max<int64_t>(0, max_pos - window + 1);
            ASSERT_EQ(first_attended_pos(shape, max_pos), first);
            const double s = scale > 0 ? scale : 1.0 / std::sqrt(static_cast<double>(hd));
            for (int64_t head = 0; head < shape.n_heads; ++head) {
              const int64_t kvh = head / group;
              std::vector<double> w;  // [max_pos + 1 - first] unnormalised probabilities
              double max_score = -INFINITY;
              for (int64_t t = first; t <= max_pos; ++t) {
                double dot = 0;
                for (int64_t i = 0; i < hd; ++i)
                  dot += static_cast<double>(q[head * hd + i]) * h.k_f32[(t * 2 + kvh) * hd + i];
                double score = dot * s;
                if (softcap > 0) score = softcap * std::tanh(score / softcap);
                w.push_back(score);
                max_score = std::max(max_score, score);
              }
              double sum = 0;
              for (double& x : w) sum += (x = std::exp(x - max_score));
              for (int64_t i = 0; i < hd; ++i) {
                double want = 0;
                for (int64_t t = first; t <= max_pos; ++t)
                  want += w[static_cast<size_t>(t - first)] / sum * h.v_f32[(t * 2 + kvh) * hd + i];
                ASSERT_NEAR(fast.out[head * hd + i], want, 1e-5) << "window " << window << " max_pos " << max_pos;
                ASSERT_NEAR(ref.out[head * hd + i], want, 1e-5) << "window " << window << " max_pos " << max_pos;
              }
              const auto n_keys = static_cast<int64_t>(w.size());
              for (int64_t t = 0; t < n_keys; ++t)
                ASSERT_NEAR(fast.probs[head * n_keys + t], w[static_cast<size_t>(t)] / sum, 1e-6);
            }
          }
        }
      }
    }
  }
}

// MLA (deepseek2): one kv head whose row is [latent (v_dim) | rope dims], the value being the
// row's first v_dim values (spans with v == k, the cache storing each row once). Fast kernel and
// scalar twin against softmax(scale · q·k) · k[:v_dim] computed in double from the stored values,
// and bit-identical however the positions are split. head_dim 80 / v_dim 64 takes the tiled
// kernel (as the random deepseek2 models), 96 / 64 the q8_0 one, 12 / 8 the scalar chunk path.
TEST(Attention, ValuesNarrowerThanKeysInTheKeyRowsMatchADirectComputation) {
  struct Narrow {
    DType type;
    int64_t hd, vd;
    double tolerance;  // f32: sums of <= 96 products over 300 keys; f16 / q8_0 add the kernels'
                       // per-block scaling order (the stored values themselves are exact)
  };
  uint32_t seed = 900;
  for (const Narrow& n : {Narrow{DType::F32, 80, 64, 1e-5}, Narrow{DType::F16, 80, 64, 1e-4},
                          Narrow{DType::Q8_0, 96, 64, 1e-4}, Narrow{DType::F32, 12, 8, 1e-5},
                          Narrow{DType::F32, 80, 72, 1e-5}}) {
    const AttentionShape shape{8, 1, n.hd, n.type, 0.07f, 0.0f, 0, n.vd};
    const int64_t n_pos = 300;
    const KvHistory h(shape, n_pos, seed++);
    std::mt19937 rng(seed++);
    const std::vector<float> q = random_query(shape.n_heads * n.hd, 4.0f, seed++);
    const std::vector<float> q_seen = query_seen(shape, q);
    // The values are the key rows: v points at k.
    auto latent_spans = [&](int64_t max_len) {
      std::vector<KvSpan> spans;
      cut(h, 0, n_pos, max_len, rng, &spans);
      for (KvSpan& sp : spans) sp.v = sp.k;
      return spans;
    };
    for (int64_t max_pos : {n_pos - 1, int64_t{37}}) {
      const std::vector<KvSpan> spans = latent_spans(100), other = latent_spans(7);
      const Result fast = attend(false, shape, spans, max_pos, q, true);
      const Result ref = attend(true, shape, spans, max_pos, q, true);
      ASSERT_EQ(fast.out.size(), static_cast<size_t>(shape.n_heads * n.vd));
      EXPECT_TRUE(bit_equal(fast.out, attend(false, shape, other, max_pos, q, true).out));
      for (int64_t head = 0; head < shape.n_heads; ++head) {
        std::vector<double> w;  // [max_pos + 1] unnormalised probabilities
        double max_score = -INFINITY;
        for (int64_t t = 0; t <= max_pos; ++t) {
          double dot = 0;
          for (int64_t i = 0; i < n.hd; ++i)
            dot += static_cast<double>(q_seen[head * n.hd + i]) * h.k_f32[t * n.hd + i];
          w.push_back(dot * 0.07f);
          max_score = std::max(max_score, w.back());
        }
        double sum = 0;
        for (double& x : w) sum += (x = std::exp(x - max_score));
        for (int64_t i = 0; i < n.vd; ++i) {
          double want = 0;
          for (int64_t t = 0; t <= max_pos; ++t) want += w[static_cast<size_t>(t)] / sum * h.k_f32[t * n.hd + i];
          ASSERT_NEAR(fast.out[head * n.vd + i], want, n.tolerance) << dtype_info(n.type).name << " hd " << n.hd;
          ASSERT_NEAR(ref.out[head * n.vd + i], want, n.tolerance) << dtype_info(n.type).name << " hd " << n.hd;
        }
      }
    }
  }
}

}  // namespace
}  // namespace flashmem
