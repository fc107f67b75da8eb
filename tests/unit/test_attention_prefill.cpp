// The tiled prefill kernel (model/attention_prefill.h) against the scalar two-pass twin
// attend_kv_head_ref on random K/V and queries (shapes, GQA groups with padded tiles, sliding
// windows, soft-capping, MLA's narrower values, f16/f32/q8_0, spans cut at odd places, histories
// with gaps), its scalar-lane twin against the same bound, and its invariants: span cuts, how the
// prompt is cut into slices and the order items run in change no bit.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <random>

#include "model/attention.h"
#include "model/attention_prefill.h"
#include "tensor/kernels.h"
#include "util/error.h"

namespace flashmem {
namespace {

constexpr double kUnitRoundoff = 0x1p-24;  // f32

struct Shape {
  int64_t n_heads, n_kv_heads, head_dim, v_dim;
  DType type;
  int64_t window;
  float softcap;
  bool values_in_keys;  // MLA: V rows are the K rows
};

// A layer's history: positions [0, n_pos) of which `kept` are in the spans (with gaps, about 30%
// of those before keep_from are left out), K and V in the cache type plus the stored values as
// f32 for the error bound.
struct History {
  AttentionShape shape;
  size_t row = 0;                   // bytes per position
  std::vector<uint8_t> k, v;        // [n_pos, n_kv_heads, head_dim] in the cache type
  std::vector<float> kf, vf;        // the same, as f32
  std::vector<int64_t> kept;        // positions the spans hold, increasing
  bool values_in_keys = false;

  History(const Shape& s, int64_t n_pos, bool gaps, int64_t keep_from, std::mt19937& rng)
      : values_in_keys(s.values_in_keys) {
    shape = AttentionShape{s.n_heads, s.n_kv_heads, s.head_dim, s.type, 0.0f, s.softcap, s.window, s.v_dim};
    const int64_t elems = n_pos * s.n_kv_heads * s.head_dim;
    row = row_bytes(s.type, s.n_kv_heads * s.head_dim);
    std::uniform_real_distribution<float> dist(-1.0f, 1.0f);
    for (auto [bytes, f32] : {std::pair{&k, &kf}, std::pair{&v, &vf}}) {
      f32->resize(static_cast<size_t>(elems));
      for (float& x : *f32) x = dist(rng);
      bytes->resize(static_cast<size_t>(n_pos) * row);
      quantize_row(s.type, f32->data(), bytes->data(), elems);
      dequantize_row(s.type, bytes->data(), f32->data(), elems);
    }
    if (s.values_in_keys) vf = kf;
    std::bernoulli_distribution drop(gaps ? 0.3 : 0.0);
    for (int64_t p = 0; p < n_pos; ++p)
      if (p >= keep_from || !drop(rng)) kept.push_back(p);
  }

  // The kept positions up to last_pos, in spans of random lengths 1 .. max_len that also end at
  // every gap.
  std::vector<KvSpan> spans(int64_t last_pos, int64_t max_len, std::mt19937& rng) const {
    std::uniform_int_distribution<int64_t> len(1, max_len);
    std::vector<KvSpan> out;
    for (size_t i = 0; i < kept.size() && kept[i] <= last_pos;) {
      const int64_t p0 = kept[i];
      int64_t n = 1;
      const int64_t want = len(rng);
      while (n < want && i + n < kept.size() && kept[i + n] == p0 + n && p0 + n <= last_pos) ++n;
      const uint8_t* k_rows = k.data() + p0 * row;
      out.push_back({p0, n, k_rows, values_in_keys ? k_rows : v.data() + p0 * row});
      i += static_cast<size_t>(n);
    }
    return out;
  }
};

// out [n, n_heads, v_dim] of the tokens at pos0 .. pos0 + n - 1 through the prefill kernel: the
// items of each step in reverse order when `reverse` (another thread order), scalar lanes when `ref`.
std::vector<float> prefill(const AttentionShape& shape, std::span<const KvSpan> spans, int64_t pos0,
                           int64_t n, const float* q, bool ref, bool reverse) {
  PrefillAttention attention;
  attention.plan(shape, spans, 0, pos0, n, q);
  std::vector<float> out(static_cast<size_t>(n * shape.n_heads * value_dim(shape)), NAN);
  std::vector<float> scratch;
  const int64_t items = attention.n_items();
  for (int64_t step = 0; step < attention.n_steps(); ++step)
    for (int64_t i = 0; i < items; ++i) {
      const int64_t item = reverse ? items - 1 - i : i;
      if (ref) {
        attention.attend_ref(item, step, scratch);
      } else {
        attention.attend(item, step, scratch);
      }
    }
  for (int64_t item = 0; item < items; ++item) attention.finish(item, out.data());
  return out;
}

std::vector<Shape> shapes() {
  std::vector<Shape> all;
  for (DType type : {DType::F16, DType::F32, DType::Q8_0}) {
    all.push_back({12, 4, 64, 0, type, 0, 0.0f, false});   // the 125M model: 3 heads per kv head
    all.push_back({4, 4, 32, 0, type, 0, 0.0f, false});    // MHA: 8 tokens of 1 head per tile
    all.push_back({8, 1, 32, 0, type, 37, 0.0f, false});   // group 8, a sliding window
    all.push_back({10, 2, 64, 0, type, 0, 5.0f, false});   // group 5 (padded tiles), soft-capping
    all.push_back({4, 1, 96, 64, type, 0, 0.0f, true});    // MLA: values are a key prefix
    all.push_back({32, 1, 32, 0, type, 11, 5.0f, false});  // a group of 32: 1 token, 4 vectors
  }
  all.push_back({6, 2, 20, 0, DType::F16, 0, 0.0f, false});  // head_dim not a multiple of 8
  all.push_back({6, 3, 24, 18, DType::F32, 5, 0.0f, false}); // v_dim not a multiple of 4
  // Tiles at 16 lanes (48 rows): group 1 with a window shorter than the tile's 48 tokens, groups
  // 6 and 7 (8 and 6 tokens; 42 rows pad the third vector), and a group of 64 (1 token, 4
  // vectors: register blocks of 3 and 1).
  all.push_back({4, 4, 32, 0, DType::F16, 40, 0.0f, false});
  all.push_back({12, 2, 64, 0, DType::Q8_0, 21, 0.0f, false});
  all.push_back({14, 2, 32, 0, DType::F16, 0, 0.0f, false});
  all.push_back({64, 1, 32, 20, DType::F32, 50, 0.0f, false});
  return all;
}

std::string name(const Shape& s) {
  return std::string(dtype_info(s.type).name) + " heads " + std::to_string(s.n_heads) + "/" +
         std::to_string(s.n_kv_heads) + " hd " + std::to_string(s.head_dim) + " vd " +
         std::to_string(s.v_dim) + " window " + std::to_string(s.window) + " softcap " +
         std::to_string(s.softcap);
}

// Both against attend_kv_head_ref, per output element, first order in u (as test_attention's
// bound): scores summed in other orders move by δs <= 2·hd·u·Σ|q k|·scale (+ 4u·cap through the
// soft-cap's tanh); probabilities by p·(2δs + ε_exp) relative, ε_exp = 1e-6 for the exp
// polynomial (AVX2's exp256 and AVX-512's exp512 are within 1e-6 relative of std::exp, checked by
// test_kernels' ExpShiftSum) and the online rescales; the value sums, in other orders and normalised after
// rather than before, by 3·(n_keys + 8)·u·Σ p|v|. So |Δout| <= vmax·(2δs + ε_exp + 3(n_keys + 8)u).
// On a q8_0 cache the twin (as the decode kernel) meets the keys with the query quantized to q8_0,
// q', while prefill keeps the f32 query: δs gains scale·Σ|k|·|q - q'|.
TEST(AttentionPrefill, MatchesReferenceOnRandomInputs) {
  std::mt19937 rng(7);
  double worst_ratio = 0;
  for (const Shape& s : shapes())
    for (bool gaps : {false, true})
      for (auto [pos0, n] : {std::pair<int64_t, int64_t>{0, 13}, {0, 70}, {300, 1}, {300, 45}, {517, 9}}) {
        // The slice's own positions are always in the spans (the pass stores them first).
        const History h(s, pos0 + n, gaps, pos0, rng);
        const std::vector<KvSpan> spans = h.spans(pos0 + n - 1, 1 + static_cast<int64_t>(rng() % 40), rng);
        const int64_t hd = s.head_dim, vd = value_dim(h.shape), group = s.n_heads / s.n_kv_heads;
        std::uniform_real_distribution<float> qdist(-4.0f, 4.0f);  // peaked enough to move the max late
        std::vector<float> q(static_cast<size_t>(n * s.n_heads * hd));  // [n, n_heads, hd]
        for (float& x : q) x = qdist(rng);
        const std::vector<float> fast = prefill(h.shape, spans, pos0, n, q.data(), false, false);
        const std::vector<float> twin = prefill(h.shape, spans, pos0, n, q.data(), true, false);
        std::vector<float> want(static_cast<size_t>(group * vd)), scores;  // [group, vd]
        const float scale = 1.0f / std::sqrt(static_cast<float>(hd));
        for (int64_t i = 0; i < n; ++i) {
          const int64_t max_pos = pos0 + i, min_pos = first_attended_pos(h.shape, max_pos);
          const int64_t n_keys = attended_keys(spans, max_pos, min_pos);
          for (int64_t kvh = 0; kvh < s.n_kv_heads; ++kvh) {
            const float* qg = &q[static_cast<size_t>((i * s.n_heads + kvh * group) * hd)];
            attend_kv_head_ref(h.shape, spans, kvh, max_pos, qg, want.data(), scores);
            std::vector<float> q_seen(qg, qg + group * hd);  // [group, hd] the query the twin meets keys with
            if (s.type == DType::Q8_0) {
              std::vector<BlockQ8_0> blocks(q_seen.size() / kQ8Block);  // [group, hd / 32]
              quantize_row(DType::Q8_0, qg, blocks.data(), group * hd);
              dequantize_row(DType::Q8_0, blocks.data(), q_seen.data(), group * hd);
            }
            for (int64_t g = 0; g < group; ++g) {
              double ds = 0, vmax = 0;
              for (int64_t p : h.kept) {
                if (p < min_pos || p > max_pos) continue;
                const size_t base = static_cast<size_t>((p * s.n_kv_heads + kvh) * hd);
                double abs_dot = 0, q_error = 0;
                for (int64_t d = 0; d < hd; ++d) {
                  abs_dot += std::fabs(qg[g * hd + d] * h.kf[base + d]);
                  q_error += std::fabs((static_cast<double>(qg[g * hd + d]) - q_seen[g * hd + d]) * h.kf[base + d]);
                }
                for (int64_t d = 0; d < vd; ++d) vmax = std::max(vmax, std::fabs(static_cast<double>(h.vf[base + d])));
                ds = std::max(ds, 2.0 * hd * kUnitRoundoff * abs_dot * scale + 4 * kUnitRoundoff * s.softcap +
                                      q_error * scale);
              }
              const double bound = vmax * (2 * ds + 1e-6 + 3.0 * (n_keys + 8) * kUnitRoundoff);
              for (int64_t c = 0; c < vd; ++c) {
                const size_t at = static_cast<size_t>((i * s.n_heads + kvh * group + g) * vd + c);
                const double ref = want[static_cast<size_t>(g * vd + c)];
                ASSERT_LE(std::fabs(fast[at] - ref), bound) << name(s) << " gaps " << gaps << " pos0 " << pos0
                                                            << " token " << i << " head " << kvh * group + g;
                ASSERT_LE(std::fabs(twin[at] - ref), bound) << name(s) << " scalar lanes, token " << i;
                worst_ratio = std::max(worst_ratio, std::fabs(fast[at] - ref) / bound);
              }
            }
          }
        }
      }
  std::printf("worst |prefill - ref| / bound: %.3g\n", worst_ratio);
}

// A row's arithmetic depends only on its query and the keys: cutting the spans elsewhere, the
// prompt into two slices (other tiles, and the first slice's spans ending at its last token), or
// running each step's items in another order gives the same bits.
TEST(AttentionPrefill, SpansSlicesAndItemOrderDoNotChangeAnyBit) {
  std::mt19937 rng(11);
  for (const Shape& s : shapes()) {
    const int64_t pos0 = 290, n = 77;
    const History h(s, pos0 + n, false, 0, rng);
    std::vector<float> q(static_cast<size_t>(n * s.n_heads * s.head_dim));  // [n, n_heads, hd]
    std::uniform_real_distribution<float> qdist(-4.0f, 4.0f);
    for (float& x : q) x = qdist(rng);
    const std::vector<KvSpan> whole = h.spans(pos0 + n - 1, pos0 + n, rng);
    const std::vector<float> want = prefill(h.shape, whole, pos0, n, q.data(), false, false);
    for (int64_t max_len : {1, 7, 33, 100}) {
      const std::vector<KvSpan> cut = h.spans(pos0 + n - 1, max_len, rng);
      const bool reverse = max_len % 2 == 1;
      EXPECT_EQ(0, std::memcmp(want.data(), prefill(h.shape, cut, pos0, n, q.data(), false, reverse).data(),
                               want.size() * sizeof(float)))
          << name(s) << " spans of <= " << max_len;
      // Two slices [pos0, pos0 + k) and [pos0 + k, pos0 + n).
      const int64_t k = 1 + max_len % (n - 1), row = s.n_heads * value_dim(h.shape);
      std::vector<float> first = prefill(h.shape, h.spans(pos0 + k - 1, max_len, rng), pos0, k, q.data(), false, reverse);
      const std::vector<float> second =
          prefill(h.shape, cut, pos0 + k, n - k, &q[static_cast<size_t>(k * s.n_heads * s.head_dim)], false, reverse);
      first.insert(first.end(), second.begin(), second.end());
      ASSERT_EQ(first.size(), want.size());
      EXPECT_EQ(0, std::memcmp(want.data(), first.data(), want.size() * sizeof(float)))
          << name(s) << " slices at " << k << " (" << row << " floats per token)";
    }
  }
}

// A history streamed window by window (KvBackend::windowed_keys, the disk and Redis tiers'
// prompts): positions [0, windowed) come as windows of window_keys positions, the last one
// together with the spans after it. The same bits as reading every position through one list of
// spans; a sliding window over such a history is an error.
TEST(AttentionPrefill, WindowedHistoryGivesTheSameBits) {
  std::mt19937 rng(13);
  constexpr int64_t kWindowKeys = 2 * kPrefillStepKeys;  // whole steps, as KV windows are
  for (const Shape& s : shapes()) {
    const int64_t pos0 = 1100, n = 37, windowed = 1040;
    const History h(s, pos0 + n, false, 0, rng);
    std::vector<float> q(static_cast<size_t>(n * s.n_heads * s.head_dim));  // [n, n_heads, hd]
    std::uniform_real_distribution<float> qdist(-4.0f, 4.0f);
    for (float& x : q) x = qdist(rng);
    const std::vector<KvSpan> all = h.spans(pos0 + n - 1, 50, rng);
    // The spans of positions [first, last) and of [windowed, pos0 + n).
    auto between = [&](int64_t first, int64_t last) {
      std::vector<KvSpan> out;
      for (const KvSpan& span : all) {
        const int64_t a = std::max(first, span.pos0), b = std::min(last, span.pos0 + span.n);
        if (a < b) out.push_back({a, b - a, span.k + (a - span.pos0) * h.row, span.v + (a - span.pos0) * h.row});
      }
      return out;
    };
    const std::vector<KvSpan> after = between(windowed, pos0 + n);
    PrefillAttention attention;
    if (s.window > 0) {
      EXPECT_THROW(attention.plan(h.shape, after, windowed, pos0, n, q.data()), Error) << name(s);
      continue;
    }
    const std::vector<float> want = prefill(h.shape, all, pos0, n, q.data(), false, false);
    attention.plan(h.shape, after, windowed, pos0, n, q.data());
    std::vector<float> scratch, got(want.size(), NAN);
    auto run_steps = [&](int64_t first, int64_t end) {
      for (int64_t step = first; step < end; ++step)
        for (int64_t item = 0; item < attention.n_items(); ++item) attention.attend(item, step, scratch);
    };
    const int64_t last_window = (windowed - 1) / kWindowKeys * kWindowKeys;
    std::vector<std::vector<KvSpan>> windows;  // kept alive until finish
    for (int64_t key = 0; key < last_window; key += kWindowKeys) {
      windows.push_back(between(key, key + kWindowKeys));
      attention.use_keys(windows.back(), key);
      run_steps(key / kPrefillStepKeys, (key + kWindowKeys) / kPrefillStepKeys);
    }
    const std::vector<KvSpan> rest = between(last_window, pos0 + n);
    attention.use_keys(rest, last_window);
    // A step whose keys are not among the current ones is refused, not read out of bounds.
    EXPECT_THROW(attention.attend(0, 0, scratch), Error) << name(s);
    run_steps(last_window / kPrefillStepKeys, attention.n_steps());
    for (int64_t item = 0; item < attention.n_items(); ++item) attention.finish(item, got.data());
    EXPECT_EQ(0, std::memcmp(want.data(), got.data(), want.size() * sizeof(float))) << name(s);
  }
}

TEST(AttentionPrefill, ShapesTheKernelCannotRunAreErrors) {
  PrefillAttention attention;
  const float q[64] = {};
  EXPECT_THROW(attention.plan(AttentionShape{6, 4, 8, DType::F16}, {}, 0, 0, 1, q), Error);
  EXPECT_THROW(attention.plan(AttentionShape{2, 1, 48, DType::Q8_0}, {}, 0, 0, 1, q), Error);
  EXPECT_THROW(attention.plan(AttentionShape{2, 1, 8, DType::F16}, {}, 0, int64_t{1} << 31, 1, q), Error);
}

}  // namespace
}  // namespace flashmem
