// Chunk scoring: the fast kernel against its scalar twin, threading, and the layer ensemble.
#include <gtest/gtest.h>

#include <cmath>
#include <limits>
#include <random>

#include "indexer/scoring.h"
#include "util/error.h"

namespace flashmem {
namespace {

IndexerQuery random_query(int64_t heads, std::mt19937& rng) {
  std::normal_distribution<float> normal(0.0f, 1.0f);
  IndexerQuery q;
  q.n_heads = heads;
  q.q.resize(static_cast<size_t>(heads * kKeyDim));
  q.weights.resize(static_cast<size_t>(heads));
  for (float& x : q.q) x = normal(rng);
  for (float& w : q.weights) w = normal(rng) * 0.1f;
  return q;
}

// Random compressed keys: every finite code (subnormals included), scales across magnitudes.
std::vector<uint8_t> random_keys(int64_t n, std::mt19937& rng) {
  std::vector<uint8_t> keys(static_cast<size_t>(n * kCompressedKeyBytes));  // [n, 132]
  std::uniform_int_distribution<int> byte(0, 255);
  std::uniform_real_distribution<float> log_scale(-6.0f, 2.0f);
  for (int64_t c = 0; c < n; ++c) {
    uint8_t* key = keys.data() + c * kCompressedKeyBytes;
    for (int d = 0; d < kKeyDim; ++d) {
      int code;
      do code = byte(rng); while ((code & 0x7F) == 0x7F);
      key[d] = static_cast<uint8_t>(code);
    }
    const float scale = std::exp2(log_scale(rng));
    std::memcpy(key + kKeyDim, &scale, 4);
  }
  return keys;
}

// Σ_h |w_h| · |q_h|·|k|: the magnitude a logit's rounding error is relative to.
double logit_magnitude(const IndexerQuery& q, const uint8_t* key) {
  float k[kKeyDim];
  decompress_key(key, k);
  double sum = 0;
  for (int64_t h = 0; h < q.n_heads; ++h) {
    double dot = 0;
    for (int d = 0; d < kKeyDim; ++d) dot += std::fabs(q.q[h * kKeyDim + d] * k[d]);
    sum += std::fabs(q.weights[h]) * dot;
  }
  return sum;
}

class ScoringTest : public ::testing::TestWithParam<int64_t> {};

TEST_P(ScoringTest, FastMatchesRef) {
  const int64_t heads = GetParam();
  std::mt19937 rng(static_cast<unsigned>(100 + heads));
  const IndexerQuery q = random_query(heads, rng);
  for (int64_t n : {1, 3, 4, 5, 67, 1000}) {
    const std::vector<uint8_t> keys = random_keys(n, rng);
    std::vector<float> fast(n), ref(n);
    score_logits(q, keys.data(), n, fast.data(), nullptr);
    score_logits_ref(q, keys.data(), n, ref.data());
    for (int64_t c = 0; c < n; ++c) {
      const double tol = 1e-5 * logit_magnitude(q, keys.data() + c * kCompressedKeyBytes) + 1e-30;
      ASSERT_NEAR(fast[c], ref[c], tol) << "heads " << heads << " n " << n << " chunk " << c;
    }
  }
}

TEST_P(ScoringTest, ThreadedIsIdenticalToSingleThread) {
  const int64_t heads = GetParam();
  std::mt19937 rng(static_cast<unsigned>(200 + heads));
  const IndexerQuery q = random_query(heads, rng);
  const int64_t n = 4099;  // not a multiple of the block size
  const std::vector<uint8_t> keys = random_keys(n, rng);
  std::vector<float> one(n), two(n);
  score_logits(q, keys.data(), n, one.data(), nullptr);
  ThreadPool pool(2);
  score_logits(q, keys.data(), n, two.data(), &pool);
  for (int64_t c = 0; c < n; ++c) ASSERT_EQ(one[c], two[c]) << c;  // same per-chunk arithmetic
}

INSTANTIATE_TEST_SUITE_P(Heads, ScoringTest, ::testing::Values(1, 8, 15, 16, 17, 48, 64, 80, 128));

TEST(Scoring, HandComputedLogit) {
  // One head of q = e_0 · 2, w = 0.5, key with element 0 = 3 (code 0x44 = 3.0, scale 1):
  // logit = 0.5 · relu(2 · 3) = 3. A second head with q = -e_0 contributes relu(-3) = 0.
  IndexerQuery q;
  q.n_heads = 2;
  q.q.assign(2 * kKeyDim, 0.0f);
  q.q[0] = 2.0f;
  q.q[kKeyDim] = -1.0f;
  q.weights = {0.5f, 7.0f};
  std::vector<uint8_t> key(kCompressedKeyBytes, 0);
  key[0] = 0x44;
  const float scale = 1.0f;
  std::memcpy(key.data() + kKeyDim, &scale, 4);
  float fast = 0, ref = 0;
  score_logits(q, key.data(), 1, &fast, nullptr);
  score_logits_ref(q, key.data(), 1, &ref);
  EXPECT_EQ(fast, 3.0f);
  EXPECT_EQ(ref, 3.0f);
}

TEST(Scoring, NaNCodesAgreeWithRef) {
  std::mt19937 rng(9);
  const IndexerQuery q = random_query(16, rng);
  std::vector<uint8_t> keys = random_keys(8, rng);
  keys[5] = 0x7F;                          // chunk 0: one NaN element
  keys[3 * kCompressedKeyBytes + 9] = 0xFF;  // chunk 3
  std::vector<float> fast(8), ref(8);
  score_logits(q, keys.data(), 8, fast.data(), nullptr);
  score_logits_ref(q, keys.data(), 8, ref.data());
  for (int c = 0; c < 8; ++c) EXPECT_NEAR(fast[c], ref[c], 1e-4f * (1 + std::fabs(ref[c]))) << c;
}

TEST(Scoring, RejectsInconsistentQuery) {
  IndexerQuery q;
  q.n_heads = 2;
  q.q.assign(kKeyDim, 0.0f);  // one head's worth
  q.weights = {1.0f, 1.0f};
  uint8_t key[kCompressedKeyBytes] = {};
  float out;
  EXPECT_THROW(score_logits(q, key, 1, &out, nullptr), Error);
  EXPECT_THROW(score_logits_ref(q, key, 1, &out), Error);
}

TEST(Ensemble, MaxAndMeanOfSigmoidScores) {
  const std::vector<float> l0 = {0.0f, 2.0f, -3.0f}, l1 = {1.0f, -2.0f, -1.0f};
  const std::vector<std::span<const float>> layers = {l0, l1};
  float max_scores[3], mean_scores[3];
  ensemble_scores(layers, EnsembleMode::kMax, max_scores, 3);
  ensemble_scores(layers, EnsembleMode::kMean, mean_scores, 3);
  auto sig = [](double x) { return 1.0 / (1.0 + std::exp(-x)); };
  for (int i = 0; i < 3; ++i) {
    EXPECT_NEAR(max_scores[i], std::max(sig(l0[i]), sig(l1[i])), 1e-6);
    EXPECT_NEAR(mean_scores[i], (sig(l0[i]) + sig(l1[i])) / 2, 1e-6);
  }
  // Chunk 1: max selects it (sigmoid(2) > 0.5), mean does not cross 0.5 exactly at 0.5.
  EXPECT_GT(max_scores[1], kSelectThreshold);
  EXPECT_EQ(parse_ensemble_mode("mean"), EnsembleMode::kMean);
  EXPECT_THROW(parse_ensemble_mode("median"), Error);
  const std::vector<float> short_layer = {0.0f};
  const std::vector<std::span<const float>> bad = {l0, short_layer};
  EXPECT_THROW(ensemble_scores(bad, EnsembleMode::kMax, max_scores, 3), Error);
}

}  // namespace
}  // namespace flashmem
