// Engine::decode with several sequences: each sequence's logits are bit-identical to decoding it
// alone on its own engine, with sequences at different lengths, prompt chunks and single decode
// tokens mixed in one pass, and policies (contiguous cache, paged full, lsa, quest) mixed; plus
// the batch's contract (checks before running) and the shared resident-KV budget.
#include <gtest/gtest.h>

#include <algorithm>
#include <cstring>
#include <optional>

#include "flashmem/engine.h"
#include "flashmem/sequence.h"
#include "indexer/indexer_model.h"
#include "util/error.h"
#include "util/raw_array.h"

namespace flashmem {
namespace {

const std::string kData = FLASHMEM_TEST_DATA;

// What one sequence of the test runs: its KV setup, its prompt, and the decode step at which
// it joins (a later start puts its prompt chunks in the same passes as others' decode tokens).
struct Plan {
  std::optional<PagedKvOptions> paged;
  int64_t prompt_tokens = 0;
  int start_step = 0;
};

class EngineBatchTest : public ::testing::TestWithParam<std::tuple<std::string, DType>> {
 protected:
  std::shared_ptr<Model> model_ = Model::load(kData + "/models/" + std::get<0>(GetParam()));
  DType kv_type_ = std::get<1>(GetParam());
  std::vector<int32_t> ids_ = read_i32_file(kData + "/logits/s260k_seq_a.i32");
  // max_batch 48: the longer prompts are cut into several chunks, one of them 1 token long.
  EngineOptions engine_options_{.n_threads = 2, .max_batch = 48};
  static constexpr int kSteps = 12;

  std::shared_ptr<const IndexerModel> indexer() const {
    RandomIndexerSpec spec;
    spec.layers = {1, 2};
    spec.hidden_dim = model_->config().dim;
    spec.q_lora_rank = 32;
    spec.n_heads = 4;
    return std::make_shared<const IndexerModel>(create_random_indexer(spec, 9));
  }

  PagedKvOptions paged(const std::string& policy) const {
    PagedKvOptions o;
    o.policy = parse_policy_spec(policy);
    o.page_tokens = 16;
    o.tau = 4;  // several selection cycles within the test's decode steps
    if (policy == "lsa") o.indexer = indexer();
    return o;
  }

  std::vector<Plan> plans() const {
    return {{std::nullopt, 97, 0},   // 48 + 48 + 1: the last chunk is a single row
            {paged("full"), 40, 0},
            {paged("lsa"), 150, 0},
            {paged("quest:2"), 120, 3},
            {std::nullopt, 1, 5},    // a one-token prompt joining mid-way
            {paged("lsa"), 60, 2}};
  }

  // [steps + 1][n_vocab] logits of the prompt's last token, then of each greedy decode step.
  using Trace = std::vector<std::vector<float>>;

  SequenceOptions sequence_options(const Plan& p) const {
    return {.n_ctx = 256, .kv_type = kv_type_, .paged = p.paged};
  }

  Trace alone(const Plan& p, int steps) {
    Engine engine(model_, engine_options_);
    Sequence seq(engine, sequence_options(p));
    const int64_t V = model_->config().n_vocab;
    Trace trace(1, std::vector<float>(static_cast<size_t>(V)));
    engine.forward(seq, std::span(ids_.data(), static_cast<size_t>(p.prompt_tokens)), trace[0].data(), false);
    for (int s = 0; s < steps; ++s) {
      const auto& last = trace.back();
      const auto token = static_cast<int32_t>(std::max_element(last.begin(), last.end()) - last.begin());
      trace.emplace_back(static_cast<size_t>(V));
      engine.forward(seq, std::span(&token, 1), trace.back().data(), false);
    }
    return trace;
  }
};

TEST_P(EngineBatchTest, EverySequenceMatchesDecodingItAlone) {
  const std::vector<Plan> plan = plans();
  const int64_t V = model_->config().n_vocab;
  Engine engine(model_, engine_options_);
  std::vector<std::unique_ptr<Sequence>> seqs;
  for (const Plan& p : plan) seqs.push_back(std::make_unique<Sequence>(engine, sequence_options(p)));
  std::vector<Trace> traces(plan.size());
  std::vector<int32_t> next(plan.size());  // [sequences] each one's greedy token
  for (int step = 0; step <= kSteps; ++step) {
    std::vector<BatchItem> batch;
    for (size_t i = 0; i < plan.size(); ++i) {
      const int first = plan[i].start_step;
      if (step < first) continue;
      traces[i].emplace_back(static_cast<size_t>(V));
      const auto tokens = step == first
                              ? std::span<const int32_t>(ids_.data(), static_cast<size_t>(plan[i].prompt_tokens))
                              : std::span<const int32_t>(&next[i], 1);
      batch.push_back({seqs[i].get(), tokens, traces[i].back().data(), false});
    }
    // Reverse order: the engine, not the caller, puts single tokens first.
    std::reverse(batch.begin(), batch.end());
    engine.decode(batch);
    for (size_t i = 0; i < plan.size(); ++i)
      if (!traces[i].empty() && step >= plan[i].start_step) {
        const auto& last = traces[i].back();
        next[i] = static_cast<int32_t>(std::max_element(last.begin(), last.end()) - last.begin());
      }
  }
  for (size_t i = 0; i < plan.size(); ++i) {
    const int steps = static_cast<int>(traces[i].size()) - 1;
    const Trace expected = alone(plan[i], steps);
    ASSERT_EQ(expected.size(), traces[i].size());
    for (size_t s = 0; s < expected.size(); ++s)
      ASSERT_EQ(0, std::memcmp(expected[s].data(), traces[i][s].data(), static_cast<size_t>(V) * 4))
          << "sequence " << i << " step " << s;
    EXPECT_EQ(seqs[i]->n_past(), plan[i].prompt_tokens + steps);
  }
}

// A scheduler feeds each prompt in parts of max_batch tokens over several decode() calls
// (prompt_continues on all but the last), in the same calls as other sequences' decode tokens:
// every sequence's logits are still those of decoding it alone with its prompt in one call.
TEST_P(EngineBatchTest, PromptsFedInPartsMatchOneCall) {
  const std::vector<Plan> plan = plans();
  const int64_t V = model_->config().n_vocab;
  const auto part = static_cast<size_t>(engine_options_.max_batch);
  Engine engine(model_, engine_options_);
  std::vector<std::unique_ptr<Sequence>> seqs;
  for (const Plan& p : plan) seqs.push_back(std::make_unique<Sequence>(engine, sequence_options(p)));
  std::vector<Trace> traces(plan.size());  // the prompt's last logits, then each decode step's
  std::vector<size_t> fed(plan.size(), 0);  // [sequences] prompt tokens fed so far
  std::vector<int32_t> next(plan.size());   // [sequences] each one's greedy token
  std::vector<float> scratch(static_cast<size_t>(V));  // [n_vocab] logits of a continuing part
  for (int step = 0; step <= kSteps + 3; ++step) {
    std::vector<BatchItem> batch;
    std::vector<size_t> owners;  // [batch items] the sequence of each item
    for (size_t i = 0; i < plan.size(); ++i) {
      if (step < plan[i].start_step || traces[i].size() > kSteps) continue;
      const auto prompt = static_cast<size_t>(plan[i].prompt_tokens);
      BatchItem item{seqs[i].get(), std::span<const int32_t>(&next[i], 1), nullptr, false};
      // Open exactly while earlier parts of the prompt went in without its end.
      EXPECT_EQ(seqs[i]->prompt_open(), fed[i] > 0 && fed[i] < prompt);
      if (fed[i] < prompt) {
        const size_t n = std::min(part, prompt - fed[i]);
        item.tokens = std::span<const int32_t>(ids_.data() + fed[i], n);
        fed[i] += n;
        item.prompt_continues = fed[i] < prompt;
      }
      if (!item.prompt_continues) traces[i].emplace_back(static_cast<size_t>(V));
      item.logits = item.prompt_continues ? scratch.data() : traces[i].back().data();
      batch.push_back(item);
      owners.push_back(i);
    }
    engine.decode(batch);
    for (size_t b = 0; b < batch.size(); ++b) {
      const size_t i = owners[b];
      EXPECT_EQ(seqs[i]->prompt_open(), batch[b].prompt_continues);
      if (batch[b].prompt_continues) continue;
      const auto& last = traces[i].back();
      next[i] = static_cast<int32_t>(std::max_element(last.begin(), last.end()) - last.begin());
    }
  }
  for (size_t i = 0; i < plan.size(); ++i) {
    const Trace expected = alone(plan[i], static_cast<int>(traces[i].size()) - 1);
    ASSERT_EQ(expected.size(), traces[i].size());
    for (size_t s = 0; s < expected.size(); ++s)
      ASSERT_EQ(0, std::memcmp(expected[s].data(), traces[i][s].data(), static_cast<size_t>(V) * 4))
          << "sequence " << i << " step " << s;
  }
}

INSTANTIATE_TEST_SUITE_P(
    ModelsAndKvTypes, EngineBatchTest,
    ::testing::Values(std::tuple{"stories260K.gguf", DType::F32}, std::tuple{"stories260K.gguf", DType::F16},
                      std::tuple{"rand-llama-q8_0.gguf", DType::F32},
                      // MLA latent rows and MoE routed per slice (pass_latent.cpp)
                      std::tuple{"rand-deepseek2-lite-yarn-f32.gguf", DType::F16}));

class EngineContractTest : public ::testing::Test {
 protected:
  std::shared_ptr<Model> model_ = Model::load(kData + "/models/stories260K.gguf");
};

TEST_F(EngineContractTest, RefusesBadBatchesBeforeRunningAnything) {
  Engine engine(model_, {.n_threads = 1});
  Engine other(model_, {.n_threads = 1});
  Sequence a(engine, {.n_ctx = 64}), b(other, {.n_ctx = 64}), small(engine, {.n_ctx = 4});
  const std::vector<int32_t> tokens = {1, 2, 3, 4, 5};
  const std::span<const int32_t> two(tokens.data(), 2);
  auto refuses = [&](std::vector<BatchItem> batch, const std::string& what) {
    try {
      engine.decode(batch);
      ADD_FAILURE() << "accepted: " << what;
    } catch (const Error& e) {
      EXPECT_NE(std::string(e.what()).find(what), std::string::npos) << e.what();
    }
  };
  refuses({{&a, two}, {&a, two}}, "appears twice");
  refuses({{&a, two}, {&b, two}}, "another engine");
  refuses({{&a, {}}}, "no tokens");
  refuses({{&a, two}, {&small, tokens}}, "context capacity");
  const int32_t bad = static_cast<int32_t>(model_->config().n_vocab);
  refuses({{&a, two}, {&small, std::span(&bad, 1)}}, "outside the vocabulary");
  // Nothing ran: the valid items of refused batches did not advance.
  EXPECT_EQ(a.n_past(), 0);
  EXPECT_EQ(small.n_past(), 0);
}

TEST_F(EngineContractTest, SharedBudgetAdmitsAndReleasesSequences) {
  Engine unlimited(model_, {.n_threads = 1});
  const uint64_t one = Sequence(unlimited, {.n_ctx = 128}).reserved_kv_bytes();
  ASSERT_GT(one, 0u);
  Engine engine(model_, {.n_threads = 1, .kv_budget_bytes = 2 * one});
  auto first = std::make_unique<Sequence>(engine, SequenceOptions{.n_ctx = 128});
  Sequence second(engine, {.n_ctx = 128});
  EXPECT_EQ(engine.kv_budget().reserved, 2 * one);
  EXPECT_EQ(engine.kv_budget().available(), 0u);
  EXPECT_EQ(engine.kv_budget().sequences, 2);
  try {
    Sequence third(engine, {.n_ctx = 128});
    ADD_FAILURE() << "a third sequence fit a budget of two";
  } catch (const KvBudgetError& e) {
    EXPECT_NE(std::string(e.what()).find("KV budget"), std::string::npos) << e.what();
    EXPECT_EQ(e.needed(), one);
    EXPECT_EQ(e.limit(), 2 * one);
  }
  first.reset();
  EXPECT_EQ(engine.kv_budget().available(), one);
  Sequence third(engine, {.n_ctx = 128});
  EXPECT_EQ(engine.kv_budget().sequences, 2);
}

TEST_F(EngineContractTest, PagedSequencesReserveTheirResidentPoolOnly) {
  Engine engine(model_, {.n_threads = 1});
  Sequence plain(engine, {.n_ctx = 512});
  PagedKvOptions o;
  o.policy = parse_policy_spec("recency:0.25");
  o.page_tokens = 16;
  Sequence paged(engine, {.n_ctx = 512, .paged = o});
  ASSERT_NE(paged.paged(), nullptr);
  EXPECT_EQ(plain.paged(), nullptr);
  EXPECT_FALSE(plain.lsa_stats().has_value());
  EXPECT_TRUE(paged.lsa_stats().has_value());
  // A quarter of the pages plus the open page (and sink/tail minimums), far below the whole KV.
  EXPECT_LT(paged.reserved_kv_bytes(), plain.reserved_kv_bytes() / 2);
  EXPECT_EQ(engine.kv_budget().reserved, plain.reserved_kv_bytes() + paged.reserved_kv_bytes());
}

// --budget-tokens: every sequence reserves the same bytes whatever its context (what the
// server's admission counts), where a fraction reserves more for a longer context.
TEST_F(EngineContractTest, TokenBudgetReservesTheSameAtAnyContext) {
  Engine engine(model_, {.n_threads = 1});
  PagedKvOptions o;
  o.policy = parse_policy_spec("recency:0.25");
  o.page_tokens = 16;
  o.budget_tokens = 160;  // 10 pages, beyond the pool's sink + tail + open minimum
  Sequence short_ctx(engine, {.n_ctx = 256, .paged = o});
  Sequence long_ctx(engine, {.n_ctx = 2048, .paged = o});
  EXPECT_EQ(short_ctx.reserved_kv_bytes(), long_ctx.reserved_kv_bytes());
  EXPECT_EQ(long_ctx.paged()->resident_pool().n_cells(), 11);  // 10 pages + the open page
  o.budget_tokens = 0;
  o.budget = 0.25;
  Sequence short_frac(engine, {.n_ctx = 256, .paged = o});
  Sequence long_frac(engine, {.n_ctx = 2048, .paged = o});
  EXPECT_GT(long_frac.reserved_kv_bytes(), 2 * short_frac.reserved_kv_bytes());  // 33 cells vs 7
}

}  // namespace
}  // namespace flashmem
