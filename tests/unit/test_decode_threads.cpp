// Decode attention splits a token's key chunks among the pool's threads (engine/pass_attention.cpp
// share_items: one contiguous run of chunks per thread). Whatever the thread count, even or
// uneven shares, the logits of every decode step are bit-identical, on the contiguous cache
// in f32, f16 and q8_0.
#include <gtest/gtest.h>

#include <cstring>
#include <random>

#include "../common/temp_dir.h"
#include "engine/session.h"
#include "model/random_model.h"

namespace flashmem {
namespace {

// 1400 prompt positions = 6 chunks of 256 keys (kAttentionChunkKeys) at the first decode step:
// 2 threads take 3 + 3, 3 take 2 + 2 + 2, 4 take 1 + 2 + 1 + 2.
constexpr int64_t kPrompt = 1400;
constexpr int kSteps = 4;

std::shared_ptr<Model> random_model() {
  RandomModelSpec spec;  // dim 128, 4 heads over 2 kv heads (group 2): head_dim 32
  spec.n_layers = 2;
  spec.context_length = 2048;
  const std::filesystem::path path = test::fresh_dir("decode_threads") / "model.gguf";
  write_random_model(spec, path.string());
  return Model::load(path.string());
}

// The logits [kSteps, n_vocab] of kSteps greedy decode steps after the prompt.
std::vector<float> decode_logits(const std::shared_ptr<Model>& model, DType kv_type, int n_threads) {
  Session session(model, SessionOptions{.n_ctx = kPrompt + kSteps, .kv_type = kv_type, .n_threads = n_threads});
  const int64_t n_vocab = model->config().n_vocab;
  std::mt19937 rng(3);
  std::vector<int32_t> prompt(static_cast<size_t>(kPrompt));
  for (int32_t& id : prompt) id = static_cast<int32_t>(rng() % static_cast<uint32_t>(n_vocab));
  std::vector<float> logits(static_cast<size_t>(n_vocab));  // [n_vocab]
  session.forward(prompt, logits.data(), false);
  std::vector<float> all;
  for (int step = 0; step < kSteps; ++step) {
    const auto next = static_cast<int32_t>(std::max_element(logits.begin(), logits.end()) - logits.begin());
    session.forward(std::span(&next, 1), logits.data(), false);
    all.insert(all.end(), logits.begin(), logits.end());
  }
  return all;
}

class DecodeThreadsTest : public ::testing::TestWithParam<DType> {};

TEST_P(DecodeThreadsTest, EveryThreadCountGivesTheSameBits) {
  const std::shared_ptr<Model> model = random_model();
  const std::vector<float> one = decode_logits(model, GetParam(), 1);
  for (const int n_threads : {2, 3, 4}) {
    const std::vector<float> got = decode_logits(model, GetParam(), n_threads);
    ASSERT_EQ(got.size(), one.size());
    EXPECT_EQ(std::memcmp(got.data(), one.data(), one.size() * sizeof(float)), 0) << n_threads << " threads";
  }
}

INSTANTIATE_TEST_SUITE_P(KvTypes, DecodeThreadsTest, ::testing::Values(DType::F32, DType::F16, DType::Q8_0),
                         [](const auto& info) { return std::string(dtype_info(info.param).name); });

}  // namespace
}  // namespace flashmem
