// The trainer's hand-written gradients against central finite differences, for every parameter
// of a small two-layer indexer, for each loss; and the losses' own derivatives.
#include <gtest/gtest.h>

#include <cmath>
#include <random>

#include "train/losses.h"
#include "train/tower_grad.h"

namespace flashmem {
namespace {

TEST(Losses, DerivativesMatchFiniteDifferences) {
  const float labels[6] = {1, 0, 1, 0, 0, 1};
  const float weights[6] = {1, 0.5f, 2, 1, 0.25f, 1};
  for (LossKind kind : {LossKind::kBce, LossKind::kFocal, LossKind::kBpr}) {
    float logits[6] = {0.3f, -1.2f, 2.5f, 0.7f, -0.1f, -3.0f};
    float grad[6];
    loss_and_grad(kind, logits, labels, weights, 6, grad);
    for (int i = 0; i < 6; ++i) {
      const float saved = logits[i], h = 1e-3f;
      logits[i] = saved + h;
      const double up = loss_and_grad(kind, logits, labels, weights, 6, nullptr);
      logits[i] = saved - h;
      const double down = loss_and_grad(kind, logits, labels, weights, 6, nullptr);
      logits[i] = saved;
      EXPECT_NEAR(grad[i], (up - down) / (2 * h), 2e-3) << loss_name(kind) << " logit " << i;
    }
  }
  // Large logits: finite, no overflow.
  const float big[2] = {80.0f, -80.0f}, y[2] = {0, 1}, w[2] = {1, 1};
  float g[2];
  EXPECT_TRUE(std::isfinite(loss_and_grad(LossKind::kBce, big, y, w, 2, g)));
  EXPECT_TRUE(std::isfinite(g[0]) && std::isfinite(g[1]));
}

TEST(TowerGrad, EveryParameterMatchesFiniteDifferences) {
  IndexerConfig config;
  config.layers = {2, 5};
  config.hidden_dim = 6;
  config.q_lora_rank = 4;
  config.n_heads = 2;
  const TowerLayout layout = tower_layout(config);
  const YarnRope rope(config.rope);
  std::mt19937 rng(3);
  std::normal_distribution<float> normal(0.0f, 1.0f);
  std::vector<float> params(static_cast<size_t>(layout.size()));
  for (float& p : params) p = normal(rng) * 0.5f;
  SampleInput x;
  x.pos = 300;
  x.n_chunks = 5;
  x.hidden.resize(2 * 6);
  x.key_inputs.resize(2 * 5 * 6);
  for (float& v : x.hidden) v = normal(rng);
  for (float& v : x.key_inputs) v = normal(rng);
  x.first_pos = {0, 40, 120, 200, 296};
  x.labels = {1, 0, 0, 1, 0};
  x.weights = {1, 1, 0.5f, 1, 1};

  for (LossKind kind : {LossKind::kBce, LossKind::kFocal, LossKind::kBpr}) {
    TowerScratch scratch;
    std::vector<float> grad(params.size(), 0.0f);
    tower_loss_grad(layout, rope, config.rms_eps, params, x, kind, grad.data(), scratch);
    int64_t checked = 0, nonzero = 0;
    for (size_t i = 0; i < params.size(); ++i) {
      const float saved = params[i], h = 2e-3f;
      params[i] = saved + h;
      const double up = tower_loss_grad(layout, rope, config.rms_eps, params, x, kind, nullptr, scratch);
      params[i] = saved - h;
      const double down = tower_loss_grad(layout, rope, config.rms_eps, params, x, kind, nullptr, scratch);
      params[i] = saved;
      const double fd = (up - down) / (2 * h);
      EXPECT_NEAR(grad[i], fd, 2e-3 + 2e-2 * std::fabs(fd)) << loss_name(kind) << " parameter " << i;
      ++checked;
      nonzero += std::fabs(grad[i]) > 1e-6 ? 1 : 0;
    }
    EXPECT_EQ(checked, layout.size());
    // Most parameters must actually receive gradient (a test of the test: relu could zero all).
    EXPECT_GT(nonzero, layout.size() / 4) << loss_name(kind);
  }
}

}  // namespace
}  // namespace flashmem
