// lsa's indexer work on the forward pass's thread pool (PagedKvOptions::pool): chunk keys and
// page scores are bit-identical to the calling-thread path, on random hidden states, in batches
// of several sizes, with the parallel paths of the key computation, the query tower's matrix
// products and the chunk scoring all taken.
#include <gtest/gtest.h>

#include <cstring>
#include <random>

#include "indexer/indexer_model.h"
#include "engine/session.h"
#include "runtime/paged_kv.h"
#include "runtime/policies/page_policy.h"
#include "util/raw_array.h"
#include "util/thread_pool.h"

namespace flashmem {
namespace {

const std::string kData = FLASHMEM_TEST_DATA;

constexpr int64_t kPageTokens = 16;
// 8300 positions = 2075 chunks of 4 tokens: above the 2048 chunks (x 16 padded heads) where the
// chunk scoring starts splitting over the pool (indexer/scoring.cpp kMinParallelWork).
constexpr int64_t kPositions = 8300;

// Page scores of every cycle an lsa policy runs over random hidden states, fed in batches of
// uneven sizes like prefill and decode would, with `pool` (nullptr: the calling thread).
std::vector<float> lsa_scores(const IndexerModel& indexer_model, ThreadPool* pool) {
  ModelConfig model;
  model.dim = indexer_model.config().hidden_dim;
  model.n_layers = 4;
  const PageLayout layout = PageLayout::make(model.n_layers, kPageTokens, 8, 2);
  PagedKvOptions o;
  o.policy = parse_policy_spec("lsa");
  o.indexer = std::shared_ptr<const IndexerModel>(&indexer_model, [](const IndexerModel*) {});
  o.page_tokens = kPageTokens;
  o.pool = pool;
  const std::unique_ptr<PagePolicy> policy =
      make_page_policy(PolicyContext{model, DType::F16, layout, o});

  std::mt19937_64 rng(17);
  std::normal_distribution<float> normal(0.0f, 1.0f);
  std::vector<float> hidden(static_cast<size_t>(model.dim));  // [D]
  std::vector<float> all_scores;
  const int64_t batches[] = {1000, 37, 1, 1, 3001, 2, 4000, 258};  // sums to kPositions
  int64_t pos0 = 0;
  for (const int64_t n : batches) {
    for (const int64_t layer : policy->hidden_layers())
      for (int64_t pos = pos0; pos < pos0 + n; ++pos) {
        for (float& x : hidden) x = normal(rng);
        policy->observe_hidden(layer, pos, hidden.data());
      }
    pos0 += n;
    policy->end_batch();
    const PageGeometry g{(pos0 + kPageTokens - 1) / kPageTokens, 1, 2};
    const std::vector<float> scores = policy->cycle_scores(g, 0);
    EXPECT_EQ(scores.size(), static_cast<size_t>(g.n_pages));
    all_scores.insert(all_scores.end(), scores.begin(), scores.end());
  }
  EXPECT_EQ(pos0, kPositions);
  return all_scores;
}

bool same_bits(const std::vector<float>& a, const std::vector<float>& b) {
  return a.size() == b.size() && std::memcmp(a.data(), b.data(), a.size() * sizeof(float)) == 0;
}

class LsaThreadsTest : public ::testing::TestWithParam<DType> {};

TEST_P(LsaThreadsTest, PoolGivesTheSameBitsAsTheCallingThread) {
  const IndexerModel indexer = create_random_indexer(
      {.layers = {1, 3}, .hidden_dim = 256, .q_lora_rank = 64, .n_heads = 8, .type = GetParam()}, 5);

  const std::vector<float> serial = lsa_scores(indexer, nullptr);
  // The scores are informative (not a constant the pool could not change).
  float lo = serial.front(), hi = serial.front();
  for (float s : serial) lo = std::min(lo, s), hi = std::max(hi, s);
  EXPECT_LT(lo, hi);
  for (const int threads : {2, 3}) {
    ThreadPool pool(threads);
    EXPECT_TRUE(same_bits(lsa_scores(indexer, &pool), serial)) << threads << " threads";
  }
}

INSTANTIATE_TEST_SUITE_P(Types, LsaThreadsTest, ::testing::Values(DType::F32, DType::F16));

// Through a session: the same logits, page scores and selection with and without the pool.
TEST(LsaThreads, SessionWithPoolMatchesTheCallingThread) {
  auto model = Model::load(kData + "/models/stories260K.gguf");
  const std::vector<int32_t> ids = read_i32_file(kData + "/logits/s260k_seq_a.i32");
  auto indexer = std::make_shared<const IndexerModel>(create_random_indexer(
      {.layers = {1, 3}, .hidden_dim = model->config().dim, .q_lora_rank = 32, .n_heads = 4}, 9));
  const SessionOptions so{.n_ctx = 512, .kv_type = DType::F16, .n_threads = 2, .max_batch = 100};
  ThreadPool pool(3);
  struct Run {
    std::vector<float> logits, scores;
    std::vector<int64_t> selection;
  };
  auto run = [&](ThreadPool* p) {
    PagedKvOptions o;
    o.policy = parse_policy_spec("lsa");
    o.indexer = indexer;
    o.page_tokens = 16;
    o.tau = 8;
    o.budget = 0.3;
    o.pool = p;
    Session s(model, so, std::make_unique<PagedKv>(*model, so.n_ctx, so.kv_type, o));
    Run r;
    r.logits.resize(static_cast<size_t>(model->config().n_vocab));
    s.forward(std::span(ids.data(), 300), nullptr, false);
    for (size_t i = 300; i < 340; ++i) s.forward(std::span(&ids[i], 1), r.logits.data(), false);
    const auto& kv = dynamic_cast<const PagedKv&>(s.kv());
    r.scores = kv.last_page_scores();
    r.selection = kv.selection();
    EXPECT_GT(kv.stats().cycles, 1);
    return r;
  };
  const Run serial = run(nullptr), pooled = run(&pool);
  EXPECT_TRUE(same_bits(serial.logits, pooled.logits));
  EXPECT_TRUE(same_bits(serial.scores, pooled.scores));
  EXPECT_EQ(serial.selection, pooled.selection);
  EXPECT_FALSE(serial.scores.empty());
}

}  // namespace
}  // namespace flashmem
