// Lookahead recall (src/eval/lookahead.h): which pages a step uses, the per-horizon counting,
// and one end-to-end measurement where oracle (the future masses) recalls at least as much as
// recency at one step ahead.
#include <gtest/gtest.h>

#include "../common/stories_fixture.h"
#include "eval/lookahead.h"
#include "util/error.h"

namespace flashmem::eval {
namespace {

TEST(Lookahead, UsedPagesHoldAShareOfTheStepsMass) {
  // Total mass 2 (two layers): pages with >= 0.1 of it (0.2) in the middle range [1, 6).
  const std::vector<float> mass = {0.9f, 0.25f, 0.05f, 0.2f, 0.1f, 0.1f, 0.4f};
  EXPECT_EQ(used_pages(mass, 1, 6, 0.1), (std::vector<int64_t>{1, 3}));
  EXPECT_EQ(used_pages(mass, 1, 3, 0.1), (std::vector<int64_t>{1}));
  // Pages past the recorded ones have no mass; an all-zero step uses nothing.
  EXPECT_EQ(used_pages(mass, 5, 20, 0.1), (std::vector<int64_t>{6}));
  EXPECT_TRUE(used_pages(std::vector<float>(5, 0.0f), 0, 5, 0.1).empty());
}

TEST(Lookahead, CountsUnionOfTheNextHStepsAgainstTodaysResidentPages) {
  const std::vector<std::vector<int64_t>> used = {{2}, {5}, {2, 7}, {}};
  const std::vector<std::vector<int64_t>> resident = {{2, 5}, {5}, {1}, {7}};
  LookaheadCounts c;
  add_lookahead_counts(used, resident, {1, 2, 4}, c);
  // h=1: t0 {2}∩{2,5}=1/1, t1 {5}∩{5}=1/1, t2 {2,7}∩{1}=0/2, t3 {}=0/0 -> 2/4.
  EXPECT_EQ(c.hits[0], 2);
  EXPECT_EQ(c.needed[0], 4);
  // h=2: t0 {2,5}: 2/2, t1 {2,5,7}∩{5}: 1/3, t2 {2,7}∩{1}: 0/2 -> 3/7.
  EXPECT_EQ(c.hits[1], 3);
  EXPECT_EQ(c.needed[1], 7);
  // h=4: t0 only, {2,5,7}∩{2,5}: 2/3.
  EXPECT_EQ(c.hits[2], 2);
  EXPECT_EQ(c.needed[2], 3);
  EXPECT_NEAR(c.recall(2), 2.0 / 3.0, 1e-12);
  EXPECT_THROW(add_lookahead_counts(used, {{1}}, {1}, c), Error);
  EXPECT_THROW(add_lookahead_counts(used, resident, {0}, c), Error);
}

TEST(Lookahead, OracleRecallsAtLeastRecencyOneStepAhead) {
  const std::shared_ptr<Model> model = test::load_stories260k();
  const std::vector<int32_t> ids = test::stories_tokens();
  SessionOptions so = test::stories_session_options();
  PagedKvOptions base;
  base.page_tokens = 16;
  base.tau = 4;
  base.budget = 0.3;
  base.indexer = test::random_stories_indexer(*model, 9);
  const std::vector<PolicySpec> policies = {parse_policy_spec("oracle:0.3"), parse_policy_spec("recency:0.3"),
                                            parse_policy_spec("lsa")};
  LookaheadOptions o;
  o.horizons = {1, 8};
  std::vector<LookaheadCounts> counts;
  const std::span<const int32_t> tokens(ids);
  measure_lookahead(model, so, base, policies, tokens.first(300), tokens.subspan(300, 40), o, counts);
  ASSERT_EQ(counts.size(), 3u);
  for (const LookaheadCounts& c : counts) {
    ASSERT_EQ(c.needed.size(), 2u);
    EXPECT_GT(c.needed[0], 0);
    EXPECT_EQ(c.needed[0], counts[0].needed[0]) << "every policy is scored against the same used pages";
  }
  // oracle:F keeps the pages with the most mass over its cycle, which contains the step (with
  // this tiny model's diffuse attention and 2 middle pages allowed it recalls ~0.27).
  EXPECT_GE(counts[0].recall(0), counts[1].recall(0));
  EXPECT_GT(counts[0].hits[0], 0);
}

}  // namespace
}  // namespace flashmem::eval
