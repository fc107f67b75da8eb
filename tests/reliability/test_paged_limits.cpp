// The paged runtime's geometry against the indexer and the context (runtime/limits.h): lsa pages
// must hold whole index chunks, and tau/sink/recent/page flags beyond the context are cut to it.
#include <gtest/gtest.h>

#include <string>

#include "../common/stories_fixture.h"
#include "indexer/indexer_model.h"
#include "engine/session.h"
#include "runtime/limits.h"
#include "runtime/paged_kv.h"
#include "util/error.h"

namespace flashmem {
namespace {

class PagedLimitsTest : public ::testing::Test {
 protected:
  std::shared_ptr<Model> model_ = test::load_stories260k();
  std::shared_ptr<const IndexerModel> indexer_ = test::random_stories_indexer(*model_, 9);

  PagedKvOptions lsa(int64_t page_tokens) const {
    PagedKvOptions o;
    o.policy = "lsa";
    o.indexer = indexer_;
    o.page_tokens = page_tokens;
    return o;
  }
};

TEST_F(PagedLimitsTest, LsaPagesMustHoldWholeIndexerChunks) {
  ASSERT_EQ(indexer_->config().chunk_tokens, 4);
  for (const int64_t page_tokens : {3, 6, 10}) {
    SCOPED_TRACE(page_tokens);
    try {
      PagedKv kv(*model_, 128, DType::F16, lsa(page_tokens));
      ADD_FAILURE() << "accepted " << page_tokens << "-token pages with 4-token chunks";
    } catch (const Error& e) {
      EXPECT_NE(std::string(e.what()).find("not a multiple of the indexer's 4-token chunks"), std::string::npos)
          << e.what();
    }
  }
  EXPECT_NO_THROW(PagedKv(*model_, 128, DType::F16, lsa(8)));
  // Without lsa the indexer scores nothing: any page size.
  PagedKvOptions window = lsa(3);
  window.policy = "window";
  EXPECT_NO_THROW(PagedKv(*model_, 128, DType::F16, window));
}

TEST_F(PagedLimitsTest, FlagsBeyondTheContextAreCutToIt) {
  PagedKvOptions o = lsa(2'000'000'000);
  o.tau = 2'000'000'000;
  o.sink_pages = 100'000'000;
  o.recent_pages = 100'000'000;
  const PagedKvOptions fit = fit_to_context(o, 30);
  EXPECT_EQ(fit.page_tokens, 32);  // the context rounded up to whole 4-token chunks
  EXPECT_EQ(fit.tau, 30);
  EXPECT_EQ(fit.sink_pages, 1);
  EXPECT_EQ(fit.recent_pages, 1);
  // Values the context can use are kept.
  PagedKvOptions small = lsa(8);
  small.tau = 16;
  const PagedKvOptions same = fit_to_context(small, 512);
  EXPECT_EQ(same.page_tokens, 8);
  EXPECT_EQ(same.tau, 16);
  EXPECT_EQ(same.sink_pages, small.sink_pages);
  EXPECT_EQ(same.recent_pages, small.recent_pages);
  // And the runtime builds with the absurd ones (before: a pool sized by the flags): one page of
  // the context's 32 tokens, at most sink + tail (tau's pages + 1) + open page cells of it.
  PagedKv kv(*model_, 30, DType::F16, o);
  EXPECT_EQ(kv.resident_pool().layout().page_tokens, 32);
  EXPECT_LE(kv.resident_pool().n_cells(), 4);
}

}  // namespace
}  // namespace flashmem
