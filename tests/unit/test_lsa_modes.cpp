// lsa extras at run time: page score "count" (chunks above 0.5 per page) keeps the same pages as
// "max" under the threshold and ranks by density under a cap; top-k mode keeps exactly the K
// best pages; bad combinations are rejected.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <numeric>

#include "../common/stories_fixture.h"
#include "indexer/indexer_model.h"
#include "engine/session.h"
#include "runtime/paged_kv.h"
#include "util/error.h"
#include "util/raw_array.h"

namespace flashmem {
namespace {

class LsaModesTest : public ::testing::Test {
 protected:
  std::shared_ptr<Model> model_ = test::load_stories260k();
  std::vector<int32_t> ids_ = test::stories_tokens();
  SessionOptions options_ = test::stories_session_options();
  std::shared_ptr<const IndexerModel> indexer_ = test::random_stories_indexer(*model_, 9);

  // Page scores and selection right after a 300-token prompt (full attention, so every mode
  // sees the same hidden states and indexer keys).
  std::pair<std::vector<float>, std::vector<int64_t>> after_prompt(const std::string& page_score,
                                                                   int64_t topk = 0,
                                                                   double budget = -1) {
    PagedKvOptions o;
    o.policy = "lsa";
    o.indexer = indexer_;
    o.page_tokens = 16;
    o.lsa_page_score = page_score;
    o.lsa_topk = topk;
    o.budget = budget;
    Session s(model_, options_, std::make_unique<PagedKv>(*model_, options_.n_ctx, options_.kv_type, o));
    s.forward(std::span(ids_.data(), 300), nullptr, false);
    const auto& kv = dynamic_cast<const PagedKv&>(s.kv());
    return {kv.last_page_scores(), kv.selection()};
  }
};

TEST_F(LsaModesTest, CountScoresKeepTheSamePagesAsMaxUnderTheThreshold) {
  const auto [max_scores, max_sel] = after_prompt("max");
  const auto [count_scores, count_sel] = after_prompt("count");
  ASSERT_EQ(max_scores.size(), count_scores.size());
  int passing = 0;
  for (size_t p = 0; p < max_scores.size(); ++p) {
    EXPECT_EQ(count_scores[p], std::floor(count_scores[p]));  // a count of chunks
    EXPECT_LE(count_scores[p], 4.0f);                         // 16-token pages of 4-token chunks
    EXPECT_EQ(max_scores[p] > 0.5f, count_scores[p] > 0.0f) << "page " << p;
    passing += count_scores[p] > 0;
  }
  EXPECT_EQ(max_sel, count_sel);
  EXPECT_GT(passing, 0);
}

// Under a budget cap (K_max densest pages) and in top-k mode, the kept middle pages are the best
// by the configured page score.
TEST_F(LsaModesTest, CapAndTopKKeepTheBestPagesByScore) {
  const PageGeometry g{300 / 16 + 1, 1, 5};  // 19 pages; tail_pages() = 64/16 + 1 = 5 (covers tau)
  const auto fixed = g.fixed_pages();
  auto best = [&](const std::vector<float>& scores, int64_t k, float threshold) {
    std::vector<int64_t> middle;
    for (int64_t p = g.sink_pages; p < g.first_tail_page(); ++p)
      if (scores[static_cast<size_t>(p)] > threshold) middle.push_back(p);
    std::sort(middle.begin(), middle.end(), [&](int64_t a, int64_t b) {
      return scores[a] > scores[b] || (scores[a] == scores[b] && a > b);
    });
    middle.resize(std::min<size_t>(middle.size(), static_cast<size_t>(k)));
    middle.insert(middle.end(), fixed.begin(), fixed.end());
    std::sort(middle.begin(), middle.end());
    return middle;
  };
  for (const char* mode : {"max", "count"}) {
    const auto [scores, topk_sel] = after_prompt(mode, 3);
    EXPECT_EQ(topk_sel, best(scores, 3, -INFINITY)) << mode;  // regardless of the threshold
    const auto [cap_scores, cap_sel] = after_prompt(mode, 0, 0.4);  // floor(0.4 * 19) = 7 pages
    EXPECT_EQ(cap_sel, best(cap_scores, 7 - static_cast<int64_t>(fixed.size()), 0.5f)) << mode;
  }
}

TEST_F(LsaModesTest, BadCombinationsRejected) {
  auto make = [&](const std::string& policy, const std::string& page_score, int64_t topk) {
    PagedKvOptions o;
    o.policy = policy;
    o.indexer = indexer_;
    o.lsa_page_score = page_score;
    o.lsa_topk = topk;
    PagedKv kv(*model_, 256, DType::F16, o);
  };
  EXPECT_NO_THROW(make("lsa", "count", 2));
  EXPECT_THROW(make("lsa", "sum", 0), Error);
  EXPECT_THROW(make("lsa", "max", -2), Error);
  EXPECT_THROW(make("recency:0.2", "count", 0), Error);
  EXPECT_THROW(make("window", "max", 3), Error);
}

}  // namespace
}  // namespace flashmem
