// The random models of every architecture (tests/data/PROVENANCE.md) under the selection
// runtime: `full` paging is bit-identical to the plain contiguous cache through prompt and
// decode (sliding windows, soft-capping and q/k norms read KV only through spans), and `lsa`
// with a random Memory Indexer decodes, selecting pages, with finite logits.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <numeric>

#include "flashmem/engine.h"
#include "flashmem/sequence.h"
#include "engine/oracle.h"
#include "engine/session.h"
#include "indexer/indexer_model.h"
#include "util/raw_array.h"

namespace flashmem {
namespace {

const std::string kData = FLASHMEM_TEST_DATA;

// Prompt of 150 tokens (9 pages of 16, windows of 40-48 positions cut across pages) and 24
// greedy decode steps: 6 selection cycles of tau = 4.
constexpr int64_t kPromptTokens = 150;
constexpr int kSteps = 24;

class ArchPolicyTest : public ::testing::TestWithParam<const char*> {
 protected:
  std::shared_ptr<Model> model_ = Model::load(kData + "/models/" + GetParam());
  std::vector<int32_t> ids_ = read_i32_file(kData + "/logits/rand_llama_ids.i32");

  PagedKvOptions paged(const std::string& policy) const {
    PagedKvOptions o;
    o.policy = parse_policy_spec(policy);
    o.page_tokens = 16;
    o.tau = 4;
    if (policy == "lsa") {
      o.policy.lsa_topk = 2;  // of 9-11 pages: selection always leaves pages out
      // What `flashmem indexer make-random` writes, for the model's width.
      RandomIndexerSpec spec;
      spec.layers = {1, 2};
      spec.hidden_dim = model_->config().dim;
      spec.q_lora_rank = 32;
      spec.n_heads = 4;
      o.indexer = std::make_shared<const IndexerModel>(create_random_indexer(spec, 9));
    }
    return o;
  }

  // [steps + 1, n_vocab] logits of the prompt's last token, then of each greedy step.
  std::vector<float> decode(Engine& engine, Sequence& seq) {
    const int64_t V = model_->config().n_vocab;
    std::vector<float> trace(static_cast<size_t>((kSteps + 1) * V));
    engine.forward(seq, std::span(ids_.data(), static_cast<size_t>(kPromptTokens)), trace.data(), false);
    for (int s = 0; s < kSteps; ++s) {
      const float* last = &trace[static_cast<size_t>(s * V)];
      const auto token = static_cast<int32_t>(std::max_element(last, last + V) - last);
      engine.forward(seq, std::span(&token, 1), &trace[static_cast<size_t>((s + 1) * V)], false);
    }
    return trace;
  }
};

TEST_P(ArchPolicyTest, FullPagingIsBitIdenticalToThePlainCache) {
  Engine engine(model_, {.n_threads = 2, .max_batch = 48});
  Sequence plain(engine, {.n_ctx = 256});
  Sequence full(engine, {.n_ctx = 256, .paged = paged("full")});
  const std::vector<float> a = decode(engine, plain), b = decode(engine, full);
  ASSERT_EQ(a.size(), b.size());
  EXPECT_EQ(std::memcmp(a.data(), b.data(), a.size() * sizeof(float)), 0);
}

TEST_P(ArchPolicyTest, LsaDecodesWithARandomIndexer) {
  Engine engine(model_, {.n_threads = 2, .max_batch = 48});
  Sequence lsa(engine, {.n_ctx = 256, .paged = paged("lsa")});
  const std::vector<float> trace = decode(engine, lsa);
  EXPECT_TRUE(std::all_of(trace.begin(), trace.end(), [](float x) { return std::isfinite(x); }));
  const auto stats = lsa.lsa_stats();
  ASSERT_TRUE(stats.has_value());
  EXPECT_GE(stats->cycles, kSteps / 4);
  // Decode attention left pages out (sink + tail + 2 selected of 9-11 pages: about half).
  EXPECT_LT(stats->attn_bytes_per_step, stats->full_kv_bytes * 3 / 4);
}

// The oracle's recorder sees every key of the spans: a windowed layer's probabilities come with
// zeros before its window, so each layer's masses still sum to 1 per decode step (gemma2's layers
// 0 and 2 attend 40 of up to 173 positions here).
TEST_P(ArchPolicyTest, OracleMassesAreProbabilitiesOverEveryKey) {
  const std::vector<int32_t> continuation(ids_.begin() + kPromptTokens, ids_.begin() + kPromptTokens + kSteps);
  const SessionOptions session{.n_ctx = 256, .kv_type = DType::F32, .n_threads = 2};
  const auto trace = record_oracle_trace(model_, session, paged("full"),
                                         std::span(ids_.data(), static_cast<size_t>(kPromptTokens)), continuation);
  ASSERT_EQ(trace->cycle_page_mass.size(), static_cast<size_t>(kSteps / 4));
  const auto L = static_cast<double>(model_->config().n_layers);
  for (size_t c = 0; c < trace->cycle_page_mass.size(); ++c) {
    const auto& mass = trace->cycle_page_mass[c];
    EXPECT_NEAR(std::accumulate(mass.begin(), mass.end(), 0.0), L * 4, 1e-3 * L * 4) << "cycle " << c;
    for (float m : mass) EXPECT_GE(m, 0.0f);
    // When every layer is windowed (the mistral file), pages wholly before the window of the
    // cycle's first decode position (kPromptTokens + 4c) got no attention at all.
    const auto& window = model_->config().layer_window;
    const int64_t w = *std::min_element(window.begin(), window.end());
    if (w == 0) continue;
    const int64_t first_pos = kPromptTokens + 4 * static_cast<int64_t>(c) - w + 1;
    for (int64_t page = 0; (page + 1) * 16 <= first_pos; ++page)
      EXPECT_EQ(mass[static_cast<size_t>(page)], 0.0f) << "cycle " << c << " page " << page;
  }
}

// deepseek2's pages hold one latent row per position and layer (values_in_keys), and every other
// policy decodes too — the query-dependent one (quest bounds the 80-wide latent rows and scores
// them with the absorbed queries) and the position-based ones — leaving pages out.
TEST(ArchPolicyDeepseek2, EveryPolicyDecodesOverLatentPages) {
  const auto model = Model::load(kData + "/models/rand-deepseek2-qlora-f32.gguf");
  const std::vector<int32_t> ids = read_i32_file(kData + "/logits/rand_llama_ids.i32");
  Engine engine(model, {.n_threads = 2, .max_batch = 48});
  const int64_t V = model->config().n_vocab;
  for (const char* policy : {"quest:2", "window", "recency:0.5", "random:0.5"}) {
    PagedKvOptions o;
    o.policy = parse_policy_spec(policy);
    o.page_tokens = 16;
    o.tau = 4;
    Sequence seq(engine, {.n_ctx = 256, .paged = o});
    std::vector<float> logits(static_cast<size_t>(V));
    engine.forward(seq, std::span(ids.data(), static_cast<size_t>(kPromptTokens)), logits.data(), false);
    for (int s = 0; s < kSteps; ++s) {
      const auto token = static_cast<int32_t>(std::max_element(logits.begin(), logits.end()) - logits.begin());
      engine.forward(seq, std::span(&token, 1), logits.data(), false);
      ASSERT_TRUE(std::all_of(logits.begin(), logits.end(), [](float x) { return std::isfinite(x); })) << policy;
    }
    const auto stats = seq.lsa_stats();
    ASSERT_TRUE(stats.has_value()) << policy;
    EXPECT_LT(stats->attn_bytes_per_step, stats->full_kv_bytes) << policy;
    // One latent row per token and layer, no V block: 3 layers × 80 f16 values = 480 bytes per
    // token (a llama of this width with 4 × 32-dim K and V heads: 1,536).
    const ModelConfig& c = model->config();
    EXPECT_EQ(stats->full_kv_bytes, static_cast<uint64_t>((kPromptTokens + kSteps) * c.n_layers) *
                                        row_bytes(seq.kv_type(), c.kv_dim()))
        << policy;
    EXPECT_EQ(c.n_layers * row_bytes(seq.kv_type(), c.kv_dim()), 480u);
  }
}

INSTANTIATE_TEST_SUITE_P(Archs, ArchPolicyTest,
                         ::testing::Values("rand-qwen3-f32.gguf", "rand-mistral-f32.gguf",
                                           "rand-phi3-f32.gguf", "rand-gemma2-f32.gguf",
                                           "rand-deepseek2-qlora-f32.gguf",
                                           "rand-deepseek2-lite-yarn-f32.gguf"),
                         [](const auto& info) {
                           std::string name = info.param;
                           for (char& ch : name)
                             if (!std::isalnum(static_cast<unsigned char>(ch))) ch = '_';
                           return name;
                         });

}  // namespace
}  // namespace flashmem
