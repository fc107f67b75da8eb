// lsa's safety net (--lsa-fallback on, runtime/policies/lsa_policy.h): a cycle where no middle
// page passes the threshold or the scores are flat keeps the best-scored pages up to the budget
// instead, counted in fallback_cycles; a confident cycle is unchanged; the option is typed,
// parsed once, and refused where it means nothing.
#include <gtest/gtest.h>

#include <algorithm>

#include "../common/stories_fixture.h"
#include "engine/session.h"
#include "runtime/paged_kv.h"
#include "runtime/policies/lsa_policy.h"
#include "util/error.h"

namespace flashmem {
namespace {

// 20 pages: sink page 0, middle pages 1-16, tail 17-18, open page 19.
const PageGeometry kGeometry{20, 1, 2};

// Page scores [20]: 0.1 everywhere but `peaks` (page, score).
std::vector<float> scores_with(std::initializer_list<std::pair<int, float>> peaks) {
  std::vector<float> scores(20, 0.1f);
  for (const auto& [page, score] : peaks) scores[static_cast<size_t>(page)] = score;
  return scores;
}

SelectionInput input_with(std::vector<float> scores, int64_t budget_pages) {
  return {.geometry = kGeometry, .budget_pages = budget_pages, .page_scores = std::move(scores)};
}

TEST(LsaFallback, UnsureWhenNothingPassesOrScoresAreFlat) {
  const std::vector<float> low = scores_with({{5, 0.3f}});  // ranked, but below the threshold
  EXPECT_TRUE(lsa_unsure(input_with(low, -1)));
  std::vector<float> confident = low;
  confident[5] = 0.9f;
  EXPECT_FALSE(lsa_unsure(input_with(confident, -1)));
  // Everything passes, but within 0.02: no ranking.
  std::vector<float> flat(20, 0.9f);
  flat[3] = 0.92f;
  EXPECT_TRUE(lsa_unsure(input_with(flat, -1)));
  // Sink and tail pages do not count: a high tail page leaves the middle unsure.
  std::vector<float> tail_only = low;
  tail_only[18] = 0.99f;
  EXPECT_TRUE(lsa_unsure(input_with(tail_only, -1)));
  // No middle page: nothing to be unsure about.
  EXPECT_FALSE(lsa_unsure({.geometry = PageGeometry{4, 1, 2}, .page_scores = std::vector<float>(4, 0.0f)}));
}

class LsaFallbackPolicy : public ::testing::Test {
 protected:
  std::shared_ptr<Model> model_ = test::load_stories260k();
  std::shared_ptr<const IndexerModel> indexer_ = test::random_stories_indexer(*model_, 9);

  std::unique_ptr<PagePolicy> make(const std::string& fallback) {
    const PageLayout layout = PageLayout::make(model_->config().n_layers, 16, model_->config().kv_dim(), 2);
    PagedKvOptions o;
    o.policy = parse_policy_spec("lsa");
    o.policy.lsa_fallback = parse_lsa_fallback(fallback);
    o.indexer = indexer_;
    return make_page_policy(PolicyContext{model_->config(), DType::F16, layout, o});
  }
};

TEST_F(LsaFallbackPolicy, WidensUnsureCyclesUpToTheBudget) {
  const std::vector<float> scores = scores_with({{5, 0.3f}, {9, 0.2f}});
  const auto off = make("off");
  const auto on = make("on");
  const std::vector<int64_t> fixed = kGeometry.fixed_pages();  // 0, 17, 18, 19
  EXPECT_EQ(off->select(input_with(scores, 8)), fixed);           // nothing passes 0.5
  EXPECT_EQ(off->fallback_cycles(), 0);
  // Budget 8 pages = the 4 fixed + 4 middle: 5 and 9 by score, then the newest of the ties.
  EXPECT_EQ(on->select(input_with(scores, 8)), (std::vector<int64_t>{0, 5, 9, 15, 16, 17, 18, 19}));
  EXPECT_EQ(on->fallback_cycles(), 1);
  // Without --budget: kLsaFallbackFraction of the context (floor(0.135 * 20) = 2 pages, less
  // than the fixed ones: nothing to add, so the cycle is not counted).
  EXPECT_EQ(on->select(input_with(scores, -1)), fixed);
  EXPECT_EQ(on->fallback_cycles(), 1);
  on->reset();
  EXPECT_EQ(on->fallback_cycles(), 0);
}

TEST_F(LsaFallbackPolicy, ConfidentCyclesAreUnchanged) {
  const std::vector<float> scores = scores_with({{5, 0.9f}, {12, 0.7f}});
  const auto off = make("off");
  const auto on = make("on");
  for (const int64_t budget : {int64_t{-1}, int64_t{8}}) {
    EXPECT_EQ(on->select(input_with(scores, budget)), off->select(input_with(scores, budget)));
    EXPECT_EQ(on->select(input_with(scores, budget)), (std::vector<int64_t>{0, 5, 12, 17, 18, 19}));
  }
  EXPECT_EQ(on->fallback_cycles(), 0);
}

TEST_F(LsaFallbackPolicy, FlatScoresKeepMoreThanTheThresholdWouldWithinTheBudget) {
  // All middle pages pass but the scores are flat; with 12 of 20 pages allowed, the threshold's
  // choice is the 8 best (12 - 4 fixed) already: the fallback adds nothing and does not count.
  std::vector<float> flat(20, 0.9f);
  const auto on = make("on");
  EXPECT_EQ(on->select(input_with(flat, 12)).size(), 12u);
  EXPECT_EQ(on->fallback_cycles(), 0);
  // Only two pass (flat at 0.51): the threshold keeps 2 middle pages, the fallback 8.
  std::vector<float> barely(20, 0.49f);
  barely[3] = barely[7] = 0.51f;
  const std::vector<int64_t> wide = on->select(input_with(barely, 12));
  EXPECT_EQ(wide.size(), 12u);
  EXPECT_TRUE(std::binary_search(wide.begin(), wide.end(), 3));
  EXPECT_TRUE(std::binary_search(wide.begin(), wide.end(), 7));
  EXPECT_EQ(on->fallback_cycles(), 1);
}

// End to end: PagedKv reports the policy's count in LsaStats, and a widened cycle's selection
// contains the threshold's.
TEST_F(LsaFallbackPolicy, PagedKvCountsFallbackCycles) {
  const std::vector<int32_t> ids = test::stories_tokens();
  const SessionOptions options = test::stories_session_options();
  auto run = [&](const std::string& fallback) {
    PagedKvOptions o;
    o.policy = parse_policy_spec("lsa");
    o.policy.lsa_fallback = parse_lsa_fallback(fallback);
    o.indexer = indexer_;
    o.page_tokens = 16;
    o.budget = 0.5;
    Session s(model_, options, std::make_unique<PagedKv>(*model_, options.n_ctx, options.kv_type, o));
    s.forward(std::span(ids.data(), 300), nullptr, false);
    const auto& kv = dynamic_cast<const PagedKv&>(s.kv());
    const SelectionInput in{.geometry = PageGeometry{300 / 16 + 1, 1, 5},
                            .page_scores = kv.last_page_scores()};
    return std::tuple{kv.selection(), kv.stats().fallback_cycles, lsa_unsure(in)};
  };
  const auto [off_sel, off_count, unsure] = run("off");
  const auto [on_sel, on_count, unsure_on] = run("on");
  EXPECT_EQ(off_count, 0);
  EXPECT_EQ(unsure, unsure_on);  // the same scores either way
  EXPECT_TRUE(std::includes(on_sel.begin(), on_sel.end(), off_sel.begin(), off_sel.end()));
  EXPECT_EQ(on_count, on_sel.size() > off_sel.size() ? 1 : 0);
  if (!unsure) {
    EXPECT_EQ(on_sel, off_sel);
  }
}

TEST(LsaFallback, OptionIsTypedAndRefusedWhereItMeansNothing) {
  EXPECT_EQ(parse_lsa_fallback("off"), LsaFallback::kOff);
  EXPECT_EQ(parse_lsa_fallback("on"), LsaFallback::kOn);
  EXPECT_THROW(parse_lsa_fallback("yes"), Error);
  PolicySpec recency = parse_policy_spec("recency:0.1");
  recency.lsa_fallback = LsaFallback::kOn;
  EXPECT_THROW(check_policy_spec(recency), Error);
  PolicySpec topk = parse_policy_spec("lsa");
  topk.lsa_fallback = LsaFallback::kOn;
  EXPECT_NO_THROW(check_policy_spec(topk));
  topk.lsa_topk = 3;
  EXPECT_THROW(check_policy_spec(topk), Error);
}

}  // namespace
}  // namespace flashmem
