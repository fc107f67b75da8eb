#include <gtest/gtest.h>

#include <algorithm>
#include <random>

#include "select/policy.h"
#include "util/error.h"

namespace flashmem {
namespace {

SelectionInput input_for(int64_t n_pages, int64_t budget = -1) {
  SelectionInput in;
  in.geometry = PageGeometry{n_pages, 1, 2};
  in.budget_pages = budget;
  return in;
}

bool contains_all(const std::vector<int64_t>& set, const std::vector<int64_t>& sub) {
  return std::includes(set.begin(), set.end(), sub.begin(), sub.end());
}

// --budget-tokens' cap in pages: min(n_pages, cap), at least the 4 fixed pages (sink 1, tail 2,
// open page), whatever the context.
TEST(PageGeometry, CappedBudgetIsFixedAndNeverBelowTheFixedPages) {
  for (int64_t n_pages : {20, 200, 2000}) EXPECT_EQ(budget_pages_capped({n_pages, 1, 2}, 7), 7) << n_pages;
  EXPECT_EQ(budget_pages_capped({20, 1, 2}, 2), 4);   // below the fixed pages: the fixed pages
  EXPECT_EQ(budget_pages_capped({20, 1, 2}, 50), 20);  // beyond the context: the context
  EXPECT_EQ(budget_pages_capped({3, 1, 2}, 1), 3);    // every page is fixed
}

TEST(PageGeometry, FixedPagesAreSinkTailAndOpenPage) {
  const PageGeometry g{10, 1, 2};
  EXPECT_EQ(g.fixed_pages(), (std::vector<int64_t>{0, 7, 8, 9}));
  EXPECT_EQ(g.n_middle_pages(), 6);
  const PageGeometry tiny{2, 1, 2};  // everything is fixed
  EXPECT_EQ(tiny.fixed_pages(), (std::vector<int64_t>{0, 1}));
  EXPECT_EQ(tiny.n_middle_pages(), 0);
}

TEST(Policy, FullKeepsEverything) {
  auto p = make_policy("full");
  EXPECT_EQ(p->select(input_for(5)), (std::vector<int64_t>{0, 1, 2, 3, 4}));
}

TEST(Policy, WindowKeepsOnlyFixedPages) {
  auto p = make_policy("window");
  EXPECT_EQ(p->select(input_for(20)), (std::vector<int64_t>{0, 17, 18, 19}));
}

TEST(Policy, RecencyKeepsNewestMiddlePagesWithinBudget) {
  auto p = make_policy("recency:0.3");
  // 20 pages * 0.3 = 6 pages in total: 4 fixed + the 2 newest middle pages (15, 16).
  EXPECT_EQ(p->select(input_for(20)), (std::vector<int64_t>{0, 15, 16, 17, 18, 19}));
}

TEST(Policy, RandomIsSeededAndWithinBudget) {
  auto a = make_policy("random:0.25", 42), b = make_policy("random:0.25", 42);
  for (int cycle = 0; cycle < 20; ++cycle) {
    const auto in = input_for(40 + cycle);
    const auto sa = a->select(in), sb = b->select(in);
    EXPECT_EQ(sa, sb);
    EXPECT_LE(static_cast<int64_t>(sa.size()), budget_pages_for(in.geometry, 0.25));
    EXPECT_TRUE(contains_all(sa, in.geometry.fixed_pages()));
    EXPECT_TRUE(std::is_sorted(sa.begin(), sa.end()));
  }
}

TEST(Policy, LsaKeepsPagesAboveThresholdAndRespectsBudgetCap) {
  auto p = make_policy("lsa");
  auto in = input_for(12);
  in.page_scores.assign(12, 0.1f);
  in.page_scores[3] = 0.9f;
  in.page_scores[5] = 0.7f;
  in.page_scores[6] = 0.6f;
  EXPECT_EQ(p->select(in), (std::vector<int64_t>{0, 3, 5, 6, 9, 10, 11}));
  in.budget_pages = 6;  // 4 fixed + the 2 densest
  EXPECT_EQ(p->select(in), (std::vector<int64_t>{0, 3, 5, 9, 10, 11}));
}

TEST(Policy, BudgetNeverExceededOnRandomInputs) {
  std::mt19937_64 rng(7);
  for (const char* spec : {"recency:0.1", "random:0.1", "oracle:0.1", "lsa"}) {
    auto p = make_policy(spec, 3);
    for (int trial = 0; trial < 200; ++trial) {
      const int64_t n = 1 + static_cast<int64_t>(rng() % 300);
      auto in = input_for(n, static_cast<int64_t>(rng() % 40));
      in.page_scores.resize(static_cast<size_t>(n));
      for (float& s : in.page_scores) s = std::uniform_real_distribution<float>(0, 1)(rng);
      const auto sel = p->select(in);
      const auto fixed = in.geometry.fixed_pages();
      EXPECT_LE(sel.size(), std::max(fixed.size(), static_cast<size_t>(in.budget_pages))) << spec;
      EXPECT_TRUE(contains_all(sel, fixed)) << spec;
      EXPECT_TRUE(std::adjacent_find(sel.begin(), sel.end()) == sel.end()) << spec;
      if (!sel.empty()) {
        EXPECT_LT(sel.back(), n);
      }
    }
  }
}

TEST(Policy, BadSpecsRejected) {
  for (const char* spec : {"nope", "recency", "recency:0", "recency:1.5", "random:x", "full:1",
                           "window:0.1", "lsa:3"})
    EXPECT_THROW(make_policy(spec), Error) << spec;
}

}  // namespace
}  // namespace flashmem

namespace flashmem {
namespace {

TEST(Policy, QuestSpecsParse) {
  EXPECT_EQ(make_policy("quest:8")->pages_per_step(), 8);
  EXPECT_EQ(make_policy("quest:8")->name(), "quest:8");
  EXPECT_EQ(make_policy("lsa")->pages_per_step(), 0);
  for (const char* spec : {"quest", "quest:", "quest:0", "quest:-3", "quest:x", "quest:1.5",
                           "quest:99999999999"})
    EXPECT_THROW(make_policy(spec), Error) << spec;
}

// For the pool, quest keeps the pages read most often in the last cycle, up to K (or --budget).
TEST(Policy, QuestPoolSelectionKeepsMostReadPages) {
  auto p = make_policy("quest:2");
  auto in = input_for(12);  // fixed: 0, 9, 10, 11
  in.page_scores.assign(12, 0.0f);
  in.page_scores[2] = 5;
  in.page_scores[4] = 9;
  in.page_scores[6] = 5;  // ties with 2: the newer page wins
  in.page_scores[10] = 50;  // a tail page: always kept anyway
  EXPECT_EQ(p->select(in), (std::vector<int64_t>{0, 4, 6, 9, 10, 11}));
  in.budget_pages = 7;  // 4 fixed + 3
  EXPECT_EQ(p->select(in), (std::vector<int64_t>{0, 2, 4, 6, 9, 10, 11}));
  in.page_scores.assign(12, 0.0f);  // nothing read yet (right after the prompt)
  EXPECT_EQ(p->select(in), (std::vector<int64_t>{0, 9, 10, 11}));
}

TEST(Policy, LsaTopKKeepsTheBestPagesWhateverTheThreshold) {
  auto p = make_policy("lsa", PolicyParams{.lsa_topk = 2});
  auto in = input_for(12);
  in.page_scores.assign(12, 0.1f);  // all below 0.5
  in.page_scores[3] = 0.3f;
  in.page_scores[5] = 0.2f;
  EXPECT_EQ(p->select(in), (std::vector<int64_t>{0, 3, 5, 9, 10, 11}));
  in.page_scores[7] = 0.9f;
  EXPECT_EQ(p->select(in), (std::vector<int64_t>{0, 3, 7, 9, 10, 11}));
  in.budget_pages = 5;  // the budget cap still applies: 4 fixed + 1
  EXPECT_EQ(p->select(in), (std::vector<int64_t>{0, 7, 9, 10, 11}));
}

// Page score "count" (selected chunks per page): the cap keeps the densest pages.
TEST(Policy, LsaBudgetCapKeepsDensestPagesByCount) {
  auto p = make_policy("lsa");
  auto in = input_for(12);
  in.page_scores.assign(12, 0.0f);
  in.page_scores[2] = 1;
  in.page_scores[3] = 4;
  in.page_scores[5] = 2;
  in.page_scores[8] = 2;
  EXPECT_EQ(p->select(in), (std::vector<int64_t>{0, 2, 3, 5, 8, 9, 10, 11}));
  in.budget_pages = 6;
  EXPECT_EQ(p->select(in), (std::vector<int64_t>{0, 3, 8, 9, 10, 11}));
}

TEST(Policy, LsaTopKRejectedElsewhere) {
  EXPECT_THROW(make_policy("recency:0.1", PolicyParams{.lsa_topk = 3}), Error);
  EXPECT_THROW(make_policy("lsa", PolicyParams{.lsa_topk = -1}), Error);
  EXPECT_EQ(parse_policy_spec("oracle:0.1").kind, PolicyKind::kOracle);
  EXPECT_EQ(parse_policy_spec("oracle:0.1").fraction, 0.1);
  EXPECT_EQ(parse_policy_spec("quest:8").pages_per_step, 8);
  EXPECT_EQ(parse_policy_spec("lsa").kind, PolicyKind::kLsa);
  EXPECT_EQ(to_string(parse_policy_spec("oracle:0.1")), "oracle:0.1");
  EXPECT_EQ(to_string(parse_policy_spec("quest:8")), "quest:8");
  EXPECT_EQ(parse_lsa_page_score("count"), LsaPageScore::kCount);
  EXPECT_THROW(parse_lsa_page_score("sum"), Error);
}

}  // namespace
}  // namespace flashmem
