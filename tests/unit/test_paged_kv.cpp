// The LSA runtime against the plain engine: `full` through the paged machinery is bit-identical
// to the contiguous cache, any policy with budget 1.0 equals full, and a sparse policy's
// attention equals attention computed directly over the same pages.
#include <gtest/gtest.h>

#include <cmath>
#include <cstdio>
#include <cstring>
#include <filesystem>

#include "../common/redis_server.h"
#include "../common/stories_fixture.h"
#include "indexer/indexer_model.h"
#include "model/sampler.h"
#include "engine/session.h"
#include "runtime/paged_kv.h"
#include "util/error.h"
#include "util/raw_array.h"
#include "../common/masked_kv.h"

namespace flashmem {
namespace {

const std::string kData = FLASHMEM_TEST_DATA;

struct RunResult {
  std::vector<float> prompt_logits;  // [n_prompt, n_vocab]
  std::vector<float> decode_logits;  // [n_decode, n_vocab]
  std::vector<int32_t> tokens;       // greedy continuation
};

// Prompt of `n_prompt` fixture ids, then `n_decode` greedy steps.
RunResult run(Session& session, const std::vector<int32_t>& ids, size_t n_prompt, size_t n_decode) {
  const int64_t V = session.model().config().n_vocab;
  RunResult r;
  r.prompt_logits.resize(n_prompt * V);
  session.forward(std::span(ids.data(), n_prompt), r.prompt_logits.data(), true);
  std::vector<float> logits(r.prompt_logits.end() - V, r.prompt_logits.end());
  for (size_t i = 0; i < n_decode; ++i) {
    const int32_t t = argmax(logits);
    r.tokens.push_back(t);
    session.forward(std::span(&t, 1), logits.data(), false);
    r.decode_logits.insert(r.decode_logits.end(), logits.begin(), logits.end());
  }
  return r;
}

bool bit_equal(const std::vector<float>& a, const std::vector<float>& b) {
  return a.size() == b.size() && std::memcmp(a.data(), b.data(), a.size() * sizeof(float)) == 0;
}

class PagedKvTest : public ::testing::TestWithParam<std::string> {
 protected:
  std::shared_ptr<Model> model_ = test::load_stories260k();
  std::vector<int32_t> ids_ = test::stories_tokens();
  SessionOptions options_ = test::stories_session_options();

  void SetUp() override {
    if (GetParam() == "redis") FLASHMEM_SKIP_WITHOUT_REDIS();
  }
  std::string store() const { return test::kv_store_for(GetParam()); }
  Session paged(const std::string& policy, double budget = -1, int64_t page_tokens = 16) {
    PagedKvOptions o;
    o.policy = parse_policy_spec(policy);
    o.budget = budget;
    o.page_tokens = page_tokens;
    o.store = store();
    o.policy.seed = 5;
    return Session(model_, options_,
                   std::make_unique<PagedKv>(*model_, options_.n_ctx, options_.kv_type, o));
  }
};

TEST_P(PagedKvTest, FullPolicyIsBitIdenticalToContiguousCache) {
  Session plain(model_, options_);
  const RunResult want = run(plain, ids_, 300, 150);
  for (int64_t page_tokens : {16, 64}) {
    Session s = paged("full", -1, page_tokens);
    const RunResult got = run(s, ids_, 300, 150);
    EXPECT_TRUE(bit_equal(got.prompt_logits, want.prompt_logits)) << page_tokens;
    EXPECT_TRUE(bit_equal(got.decode_logits, want.decode_logits)) << page_tokens;
  }
}

TEST_P(PagedKvTest, AnyPolicyWithFullBudgetEqualsFull) {
  Session plain(model_, options_);
  const RunResult want = run(plain, ids_, 200, 100);
  for (const char* policy : {"recency:1", "random:1"}) {
    Session s = paged(policy, 1.0);
    const RunResult got = run(s, ids_, 200, 100);
    EXPECT_TRUE(bit_equal(got.decode_logits, want.decode_logits)) << policy;
  }
}

TEST_P(PagedKvTest, SparsePoliciesReadOnlyTheBudget) {
  for (const char* policy : {"window", "recency:0.2", "random:0.2"}) {
    Session s = paged(policy);
    run(s, ids_, 300, 130);  // two selection cycles after the prompt
    const auto& kv = dynamic_cast<const PagedKv&>(s.kv());
    const LsaStats st = kv.stats();
    EXPECT_GT(st.cycles, 2) << policy;
    EXPECT_LT(st.resident_fraction_avg, 0.5) << policy;
    EXPECT_LT(st.attn_bytes_per_step, st.full_kv_bytes / 2) << policy;
    EXPECT_EQ(st.recall_misses, 0u) << policy;
  }
}

TEST_P(PagedKvTest, ResidentAttentionEqualsAttentionOverTheSamePages) {
  const int64_t page_tokens = 16, V = model_->config().n_vocab;
  Session s = paged("random:0.25", -1, page_tokens);
  auto masked_kv = std::make_unique<MaskedKv>(model_->config(), options_.n_ctx, page_tokens);
  MaskedKv* masked = masked_kv.get();
  Session ref(model_, options_, std::move(masked_kv));
  const auto& kv = dynamic_cast<const PagedKv&>(s.kv());

  std::vector<float> a(static_cast<size_t>(300 * V)), b(a.size());
  const std::span prompt(ids_.data(), 300);
  s.forward(prompt, a.data(), true);
  ref.forward(prompt, b.data(), true);
  ASSERT_TRUE(bit_equal(a, b));  // the prompt reads everything in both
  masked->decoding = true;
  std::vector<float> la(static_cast<size_t>(V)), lb(la.size());
  int32_t t = argmax(std::span(a.end() - V, a.end()));
  for (int step = 0; step < 140; ++step) {
    s.forward(std::span(&t, 1), la.data(), false);
    // The reference reads exactly the pages the paged run read, straight from the full cache.
    masked->pages = kv.last_read_pages();
    ref.forward(std::span(&t, 1), lb.data(), false);
    ASSERT_TRUE(bit_equal(la, lb)) << "step " << step;
    ASSERT_LT(masked->pages.size(), 10u);  // 19 pages of history: the run really is sparse
    t = argmax(la);
  }
}

// The q8_0 cache through the paged runtime (pages of 34-byte blocks, on both stores) equals the
// contiguous q8_0 cache bit for bit, and stays close to f16. stories260K's 8-wide heads cannot
// hold q8_0 blocks, so the bundled needle-lm (heads of 64) runs here.
TEST_P(PagedKvTest, Q8CacheFullPolicyIsBitIdenticalAndCloseToF16) {
  const auto needle = Model::load(kData + "/../../models/needle-lm.gguf");
  SessionOptions q8 = options_;
  q8.kv_type = DType::Q8_0;
  std::vector<int32_t> ids(ids_.begin(), ids_.begin() + 300);
  for (int32_t& t : ids) t %= static_cast<int32_t>(needle->config().n_vocab);
  Session plain(needle, q8);
  const RunResult want = run(plain, ids, 250, 50);
  PagedKvOptions o;
  o.policy = parse_policy_spec("full");
  o.page_tokens = 16;
  o.store = store();
  Session s(needle, q8, std::make_unique<PagedKv>(*needle, q8.n_ctx, DType::Q8_0, o));
  const RunResult got = run(s, ids, 250, 50);
  EXPECT_TRUE(bit_equal(got.prompt_logits, want.prompt_logits));
  EXPECT_TRUE(bit_equal(got.decode_logits, want.decode_logits));
  EXPECT_EQ(got.tokens, want.tokens);

  // Against f16 on the same 250 prompt tokens: the same next token at (nearly) every position,
  // and logits that move by a small fraction of their spread.
  Session f16(needle, options_);
  const RunResult ref = run(f16, ids, 250, 0);
  const auto V = static_cast<size_t>(needle->config().n_vocab);
  double max_diff = 0, sum_diff = 0, lo = ref.prompt_logits[0], hi = lo;
  int same_top = 0;
  for (size_t i = 0; i < ref.prompt_logits.size(); ++i) {
    const double d = std::fabs(want.prompt_logits[i] - ref.prompt_logits[i]);
    max_diff = std::max(max_diff, d);
    sum_diff += d;
    lo = std::min<double>(lo, ref.prompt_logits[i]);
    hi = std::max<double>(hi, ref.prompt_logits[i]);
  }
  for (size_t p = 0; p < 250; ++p)
    same_top += argmax(std::span(&want.prompt_logits[p * V], V)) == argmax(std::span(&ref.prompt_logits[p * V], V));
  std::printf("[ q8_0 ] vs f16: same top token at %d of 250 positions; |logit diff| max %.3f, mean "
              "%.4f; logit range %.1f\n", same_top, max_diff, sum_diff / ref.prompt_logits.size(), hi - lo);
  EXPECT_GE(same_top, 245);
  EXPECT_LT(max_diff, 0.05 * (hi - lo));
  EXPECT_LT(sum_diff / static_cast<double>(ref.prompt_logits.size()), 0.002 * (hi - lo));
}

INSTANTIATE_TEST_SUITE_P(Stores, PagedKvTest, ::testing::Values("ram", "disk", "redis"));

TEST(KvTypes, Q8NeedsHeadsOfWholeBlocksAndOtherTypesAreRejected) {
  auto model = Model::load(kData + "/models/stories260K.gguf");  // head_dim 8
  SessionOptions o{.n_ctx = 64, .kv_type = DType::Q8_0, .n_threads = 1};
  try {
    Session s(model, o);
    ADD_FAILURE() << "q8_0 accepted for 8-wide heads";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("head_dim"), std::string::npos) << e.what();
  }
  EXPECT_THROW(PagedKv(*model, 64, DType::Q8_0, PagedKvOptions{}), Error);  // policy full
  o.kv_type = DType::Q4_0;
  EXPECT_THROW(Session(model, o), Error);
}

TEST(PagedKvOptions, BadOptionsRejected) {
  auto model = Model::load(kData + "/models/stories260K.gguf");
  auto make = [&](const std::string& policy, const std::string& store, double budget,
                  int64_t page_tokens) {
    PagedKvOptions o;
    o.policy = parse_policy_spec(policy);
    o.store = store;
    o.budget = budget;
    o.page_tokens = page_tokens;
    PagedKv kv(*model, 256, DType::F16, o);
  };
  EXPECT_THROW(make("lsa", "ram", -1, 16), Error);  // no indexer
  EXPECT_THROW(make("nope", "ram", -1, 16), Error);
  EXPECT_THROW(make("full", "tape:x", -1, 16), Error);
  EXPECT_THROW(make("full", "ram", 2.0, 16), Error);
  EXPECT_THROW(make("full", "ram", -1, 0), Error);
}

// --budget-tokens: the pool's cells and the per-cycle selection are a fixed number of pages,
// whatever the context.
class PagedKvBudgetTokensTest : public ::testing::Test {
 protected:
  std::shared_ptr<Model> model_ = test::load_stories260k();
  std::vector<int32_t> ids_ = test::stories_tokens();

  // Page 16, sink 1, recent 1, tau 16: tail = max(1, ceil(16 / 16) + 1) = 2 pages, so the
  // pool's minimum is sink + tail + open page = 4 cells.
  static PagedKvOptions options(const std::string& policy, double budget, int64_t budget_tokens) {
    PagedKvOptions o;
    o.policy = parse_policy_spec(policy);
    o.policy.seed = 3;
    o.budget = budget;
    o.budget_tokens = budget_tokens;
    o.page_tokens = 16;
    o.sink_pages = 1;
    o.recent_pages = 1;
    o.tau = 16;
    return o;
  }
  int64_t cells(int64_t capacity, const PagedKvOptions& o) const {
    return PagedKv(*model_, capacity, DType::F16, o).resident_pool().n_cells();
  }
};

TEST_F(PagedKvBudgetTokensTest, CellsAreTheCapWhateverTheContext) {
  // 100 tokens round up to ceil(100 / 16) = 7 pages, plus the open page.
  for (int64_t capacity : {512, 2048})
    EXPECT_EQ(cells(capacity, options("random:0.5", -1, 100)), 8) << capacity;
  // A fraction grows with the context (the contrast the flag exists for): ceil(0.25 * 32) + 1
  // and ceil(0.25 * 128) + 1.
  EXPECT_EQ(cells(512, options("random:0.5", 0.25, 0)), 9);
  EXPECT_EQ(cells(2048, options("random:0.5", 0.25, 0)), 33);
  // Exactly one page's tokens is one page; one token more is two.
  EXPECT_EQ(cells(2048, options("random:0.5", -1, 96)), 7);
  EXPECT_EQ(cells(2048, options("random:0.5", -1, 97)), 8);
  // Below sink + tail + open page: that minimum, as for a too-small fraction.
  EXPECT_EQ(cells(2048, options("random:0.5", -1, 1)), 4);
  EXPECT_EQ(cells(2048, options("random:0.5", 0.001, 0)), 4);
  // A cap beyond the context is the context: 48 positions are 3 pages, plus the open page.
  EXPECT_EQ(cells(48, options("random:0.5", -1, 100000)), 4);
  EXPECT_EQ(cells(48, options("random:0.5", 1.0, 0)), 4);
  // quest:K keeps the cap too (without one it sizes its cells from K).
  EXPECT_EQ(cells(2048, options("quest:2", -1, 100)), 8);
}

TEST_F(PagedKvBudgetTokensTest, SelectionNeverExceedsTheCap) {
  const SessionOptions so = test::stories_session_options();
  // random:0.5 alone would keep about half of the ~20 pages: the 7-page cap binds.
  for (const char* policy : {"random:0.5", "recency:0.9"}) {
    Session s(model_, so, std::make_unique<PagedKv>(*model_, so.n_ctx, so.kv_type, options(policy, -1, 100)));
    const auto& kv = dynamic_cast<const PagedKv&>(s.kv());
    s.forward(std::span(ids_.data(), 300), nullptr, false);
    int64_t cycles_seen = 0, last_cycles = -1;
    for (int step = 0; step < 80; ++step) {
      const int32_t t = ids_[300 + static_cast<size_t>(step)];
      s.forward(std::span(&t, 1), nullptr, false);
      const int64_t cycles = kv.stats().cycles;
      if (cycles == last_cycles) continue;
      last_cycles = cycles;
      ++cycles_seen;
      EXPECT_EQ(kv.selection().size(), 7u) << policy << " step " << step;
      // The pool holds the cap plus the open page, at the 512-token context as at any other.
      const PoolStats ps = kv.resident_pool().stats();
      EXPECT_EQ(ps.n_cells, 8) << policy;
      EXPECT_LE(ps.peak_resident_bytes, ps.budget_bytes) << policy;
    }
    EXPECT_GE(cycles_seen, 4) << policy;  // 80 steps at tau 16: five cycles
  }
}

TEST_F(PagedKvBudgetTokensTest, BadBudgetsRejected) {
  EXPECT_THROW(cells(512, options("random:0.5", 0.25, 100)), Error);  // both
  EXPECT_THROW(cells(512, options("random:0.5", -1, -5)), Error);
}

}  // namespace
}  // namespace flashmem
