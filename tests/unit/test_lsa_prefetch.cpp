// lsa lookahead recall (--lsa-prefetch K): K = 0 and K > 0 with every page kept equal the plain
// cache bit for bit; with a sparse budget on the disk store, K steps before each boundary the
// next selection is chosen and its pages prefetched while the current selection is still read,
// and the boundary installs exactly that selection with every page resident or in flight.
#include <gtest/gtest.h>

#include <cstring>

#include "../common/stories_fixture.h"
#include "engine/session.h"
#include "indexer/indexer_model.h"
#include "model/sampler.h"
#include "runtime/paged_kv.h"
#include "util/error.h"

namespace flashmem {
namespace {

class LsaPrefetchTest : public ::testing::Test {
 protected:
  std::shared_ptr<Model> model_ = test::load_stories260k();
  std::vector<int32_t> ids_ = test::stories_tokens();
  SessionOptions options_ = test::stories_session_options();
  std::shared_ptr<const IndexerModel> indexer_ = test::random_stories_indexer(*model_, 9);

  PagedKvOptions lsa(int64_t prefetch, int64_t topk, double budget, int64_t page_tokens, int64_t tau) {
    PagedKvOptions o;
    o.policy = parse_policy_spec("lsa");
    o.policy.lsa_topk = topk;
    o.policy.lsa_prefetch = prefetch;
    o.indexer = indexer_;
    o.budget = budget;
    o.page_tokens = page_tokens;
    o.tau = tau;
    o.store = "disk:" + ::testing::TempDir();
    return o;
  }
  Session paged(const PagedKvOptions& o) {
    return Session(model_, options_, std::make_unique<PagedKv>(*model_, options_.n_ctx, options_.kv_type, o));
  }
};

// Greedy decode logits [n_decode, n_vocab] after a prompt of n_prompt fixture ids.
std::vector<float> decode_logits(Session& s, const std::vector<int32_t>& ids, size_t n_prompt, size_t n_decode) {
  const int64_t V = s.model().config().n_vocab;
  std::vector<float> logits(static_cast<size_t>(V)), all;
  s.forward(std::span(ids.data(), n_prompt), logits.data(), false);
  for (size_t i = 0; i < n_decode; ++i) {
    const int32_t t = argmax(logits);
    s.forward(std::span(&t, 1), logits.data(), false);
    all.insert(all.end(), logits.begin(), logits.end());
  }
  return all;
}

bool bit_equal(const std::vector<float>& a, const std::vector<float>& b) {
  return a.size() == b.size() && std::memcmp(a.data(), b.data(), a.size() * sizeof(float)) == 0;
}

// Every page kept (top-k over all pages, budget 1.0): with or without lookahead the runtime reads
// everything, so both equal the contiguous cache; K = 0 goes through the unchanged path.
TEST_F(LsaPrefetchTest, KeepingEveryPageEqualsThePlainCacheWithAndWithoutLookahead) {
  Session plain(model_, options_);
  const std::vector<float> want = decode_logits(plain, ids_, 200, 150);
  for (int64_t k : {0, 8}) {
    Session s = paged(lsa(k, 10000, 1.0, 16, 64));
    EXPECT_TRUE(bit_equal(decode_logits(s, ids_, 200, 150), want)) << "K " << k;
    const LsaStats st = dynamic_cast<const PagedKv&>(s.kv()).stats();
    EXPECT_EQ(st.cycles, 3) << k;  // after the prompt, at decode steps 64 and 128
    EXPECT_LE(st.recall_wait_first_ms, st.recall_wait_ms) << k;
    if (k == 0) {
      EXPECT_EQ(st.prefetched + st.prefetch_dropped, 0u);
    }
  }
}

// 4-token pages (75 after the prompt), tau 16, K 4: 4 middle pages per cycle out of ~70, so
// each cycle's pages are mostly not cached and prefetching has work to do.
TEST_F(LsaPrefetchTest, BoundaryInstallsTheSelectionChosenKStepsBeforeWithItsPagesResident) {
  constexpr int64_t kTau = 16, kLead = 4;
  Session s = paged(lsa(kLead, 4, 0.15, 4, kTau));
  const auto& kv = dynamic_cast<const PagedKv&>(s.kv());
  const int64_t V = model_->config().n_vocab;
  std::vector<float> logits(static_cast<size_t>(V));
  s.forward(std::span(ids_.data(), 300), logits.data(), false);
  EXPECT_TRUE(kv.next_selection().empty());  // the prompt's cycle is chosen at once
  std::vector<int64_t> current = kv.selection(), chosen_early;
  int installs = 0;
  for (int64_t step = 1; step <= 6 * kTau; ++step) {
    const int32_t t = argmax(logits);
    s.forward(std::span(&t, 1), logits.data(), false);
    if (step % kTau == kTau - kLead) {
      chosen_early = kv.next_selection();
      ASSERT_FALSE(chosen_early.empty()) << step;
      EXPECT_EQ(kv.selection(), current) << step;  // attention still reads the current cycle's
    } else if (step % kTau == 0) {
      EXPECT_EQ(kv.selection(), chosen_early) << step;
      EXPECT_TRUE(kv.next_selection().empty()) << step;
      const std::vector<int32_t> table = kv.resident_pool().page_table();
      for (int64_t p : kv.selection()) EXPECT_GE(table[static_cast<size_t>(p)], 0) << "page " << p;
      current = kv.selection();
      installs += 1;
    } else if (step % kTau > kTau - kLead) {
      EXPECT_EQ(kv.next_selection(), chosen_early) << step;
    }
  }
  EXPECT_EQ(installs, 6);
  const PoolStats ps = kv.resident_pool().stats();
  EXPECT_EQ(ps.selection_dropped, 0u);
  const LsaStats st = kv.stats();
  EXPECT_GT(st.prefetched, 0u);
  EXPECT_EQ(st.prefetched, ps.prefetched);
  EXPECT_EQ(st.cycles, 7);
  EXPECT_LE(st.recall_wait_first_ms, st.recall_wait_ms);
  EXPECT_EQ(kv.resident_pool().check_invariants(), "");
  // The spare cells: half the budget's selected cells (ceil(0.15 * 128) + 1 = 21 cells, of which
  // sink 1, tail 5 (ceil((16 + 4) / 4) - 1 = 4 < 16 / 4 + 1) and the open page are not selected).
  EXPECT_EQ(ps.n_cells, 21 + (21 - 1 - 5 - 1) / 2);
}

TEST_F(LsaPrefetchTest, PersistSettingsNameTheLeadOnlyWhenOn) {
  const auto has_key = [&](const PagedKvOptions& o) {
    for (const auto& [name, value] : persist_settings(model_->config(), DType::F16, o))
      if (name == "lsa_prefetch") return value;
    return std::string("absent");
  };
  EXPECT_EQ(has_key(lsa(0, 4, 0.5, 16, 64)), "absent");
  EXPECT_EQ(has_key(lsa(8, 4, 0.5, 16, 64)), "8");
}

TEST_F(LsaPrefetchTest, BadLeadsRejected) {
  auto make = [&](const std::string& policy, int64_t prefetch, int64_t tau) {
    PagedKvOptions o = lsa(prefetch, 0, -1, 16, tau);
    o.policy.kind = parse_policy_spec(policy).kind;
    o.policy.fraction = parse_policy_spec(policy).fraction;
    PagedKv kv(*model_, 256, DType::F16, o);
  };
  EXPECT_NO_THROW(make("lsa", 63, 64));
  EXPECT_THROW(make("lsa", 64, 64), Error);  // K must be below tau
  EXPECT_THROW(make("lsa", -1, 64), Error);
  EXPECT_THROW(make("recency:0.2", 8, 64), Error);  // lsa only
}

}  // namespace
}  // namespace flashmem
