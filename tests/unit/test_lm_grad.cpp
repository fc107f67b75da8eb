// train-lm's hand-written backward pass: every parameter's gradient against central finite
// differences on a tiny GQA model, the GEMM against its scalar twin, AdamW and the schedule.
#include <gtest/gtest.h>

#include <cmath>
#include <random>

#include "lm/gemm.h"
#include "lm/lm_forward.h"
#include "lm/optimizer.h"

namespace flashmem::lm {
namespace {

LmConfig tiny_config() {
  LmConfig c;
  c.n_vocab = 23;
  c.dim = 8;
  c.n_layers = 2;
  c.n_heads = 2;
  c.n_kv_heads = 1;  // GQA: both query heads share one key/value head
  c.ff_dim = 12;
  c.context_length = 64;
  return c;
}

// Random O(1) parameters (not the small training init) so every path carries a real gradient.
std::vector<float> random_params(const LmConfig& c, const ParamLayout& l, uint64_t seed) {
  std::mt19937_64 rng(seed);
  std::normal_distribution<float> normal(0.0f, 0.5f);
  std::vector<float> p(l.total);
  for (float& x : p) x = normal(rng);
  for (const ParamTensor& t : param_tensors(c, l))
    if (t.rows == 1)
      for (int64_t i = 0; i < t.cols; ++i) p[t.offset + i] = 1.0f + 0.3f * normal(rng);
  return p;
}

// Central difference of the loss in parameter k: (L(p + step) - L(p - step)) / 2·step, p[k]
// restored after.
double central_difference(const LmConfig& c, const ParamLayout& l, std::vector<float>& p, const RopeTable& rope,
                          const std::vector<int32_t>& tokens, const std::vector<Target>& targets, Activations& acts,
                          size_t k, float step) {
  const float saved = p[k];
  p[k] = saved + step;
  const double up = forward(c, l, p.data(), rope, tokens, targets, acts);
  p[k] = saved - step;
  const double down = forward(c, l, p.data(), rope, tokens, targets, acts);
  p[k] = saved;
  return (up - down) / (2.0 * step);
}

// Tied embeddings: the output head is the embedding, so its gradient is the sum of both uses.
class LmGradTied : public ::testing::TestWithParam<bool> {};
INSTANTIATE_TEST_SUITE_P(LmGrad, LmGradTied, ::testing::Values(false, true),
                         [](const auto& info) { return info.param ? "tied" : "untied"; });

TEST_P(LmGradTied, EveryGradientMatchesFiniteDifferences) {
  LmConfig c = tiny_config();
  c.tied_embeddings = GetParam();
  const ParamLayout l = make_layout(c);
  std::vector<float> p = random_params(c, l, 3);
  const std::vector<int32_t> tokens = {1, 5, 9, 2, 17, 22, 3, 8, 5};
  const std::vector<Target> targets = {{0, 5}, {3, 17}, {4, 0, 0.25f}, {7, 5}, {8, 11, 2.0f}};
  const RopeTable rope = make_rope_table(c, static_cast<int64_t>(tokens.size()));
  Activations acts;
  forward(c, l, p.data(), rope, tokens, targets, acts);
  std::vector<float> grads(l.total, 0.0f);
  backward(c, l, p.data(), rope, tokens, targets, acts, grads.data());

  // The forward runs in float, so the step must stay large (1e-2: rounding noise ~1e-5);
  // Richardson extrapolation of two central differences cancels their O(h²) error.
  const float h = 1e-2f;
  auto central = [&](size_t k, float step) { return central_difference(c, l, p, rope, tokens, targets, acts, k, step); };
  for (const ParamTensor& t : param_tensors(c, l)) {
    double diff2 = 0, norm2 = 0;
    for (int64_t i = 0; i < t.rows * t.cols; ++i) {
      const size_t k = t.offset + static_cast<size_t>(i);
      const double numeric = (4.0 * central(k, h / 2) - central(k, h)) / 3.0;
      diff2 += (numeric - grads[k]) * (numeric - grads[k]);
      norm2 += numeric * numeric;
      EXPECT_NEAR(grads[k], numeric, 2e-3 + 3e-2 * std::fabs(numeric)) << t.name << "[" << i << "]";
    }
    EXPECT_GT(norm2, 1e-8) << t.name << " has no gradient at all";
    EXPECT_LT(std::sqrt(diff2 / std::max(norm2, 1e-30)), 1e-2) << t.name;
  }
}

// A sequence longer than attention's 64-row blocks: sampled attention and embedding entries.
TEST(LmGrad, BlockedCausalAttentionGradients) {
  const LmConfig c = tiny_config();
  const ParamLayout l = make_layout(c);
  std::vector<float> p = random_params(c, l, 8);
  for (float& x : p) x *= 0.5f;  // keep 150-token softmaxes away from saturation
  std::mt19937_64 rng(9);
  std::vector<int32_t> tokens(150);
  for (int32_t& t : tokens) t = static_cast<int32_t>(rng() % c.n_vocab);
  const std::vector<Target> targets = {{10, 3}, {70, 4}, {130, 5}, {149, 6}};
  const RopeTable rope = make_rope_table(c, 150);
  Activations acts;
  forward(c, l, p.data(), rope, tokens, targets, acts);
  std::vector<float> grads(l.total, 0.0f);
  backward(c, l, p.data(), rope, tokens, targets, acts, grads.data());
  std::vector<size_t> probe;
  for (const LayerOffsets& o : l.layers)
    for (size_t base : {o.wq, o.wk, o.wv, o.wo})
      for (int i = 0; i < 6; ++i) probe.push_back(base + rng() % (c.dim * c.kv_dim()));
  for (int i = 0; i < 6; ++i) probe.push_back(l.tok_embd + rng() % (c.n_vocab * c.dim));
  const float h = 1e-2f;  // as above: large against float rounding
  for (const size_t k : probe) {
    const double numeric = central_difference(c, l, p, rope, tokens, targets, acts, k, h);
    EXPECT_NEAR(grads[k], numeric, 2e-3 + 3e-2 * std::fabs(numeric)) << "param " << k;
  }
}

TEST(LmGrad, GemmMatchesScalarTwin) {
  std::mt19937 rng(5);
  std::uniform_real_distribution<float> u(-1.0f, 1.0f);
  for (auto [m, n, k] : {std::tuple<int64_t, int64_t, int64_t>{1, 7, 5}, {37, 19, 64}, {130, 66, 33}}) {
    std::vector<float> a(m * k), b(n * k), c(m * n), r(m * n);
    for (float& x : a) x = u(rng);
    for (float& x : b) x = u(rng);
    gemm_abt(a.data(), b.data(), c.data(), m, n, k);
    gemm_abt_ref(a.data(), b.data(), r.data(), m, n, k);
    for (size_t i = 0; i < c.size(); ++i) EXPECT_NEAR(c[i], r[i], 1e-4f * std::sqrt(static_cast<float>(k)));
    std::vector<float> t(m * k), tt(m * k);
    transpose(a.data(), t.data(), m, k);
    transpose(t.data(), tt.data(), k, m);
    EXPECT_EQ(tt, a);
  }
}

TEST(LmGrad, ScheduleWarmsUpThenDecays) {
  LrSchedule o;
  o.peak_lr = 1e-3;
  o.warmup_steps = 10;
  o.total_steps = 110;
  o.min_lr_ratio = 0.1;
  EXPECT_NEAR(lr_at(o, 0), 1e-4, 1e-12);
  EXPECT_NEAR(lr_at(o, 9), 1e-3, 1e-12);
  EXPECT_NEAR(lr_at(o, 60), 0.55e-3, 1e-9);  // half-way through the cosine
  EXPECT_NEAR(lr_at(o, 110), 1e-4, 1e-12);
}

TEST(LmGrad, AdamWClipsAndSkipsDecayOnNorms) {
  const LmConfig c = tiny_config();
  const ParamLayout l = make_layout(c);
  const OptimizerOptions o;  // train-lm's: lr 3e-3, weight decay 0.1, clip 1
  const double lr = o.schedule.peak_lr;
  AdamW adam(o.adamw, decay_mask(c, l));
  std::vector<float> p(l.total, 1.0f), g(l.total, 0.0f);
  g[l.output_norm] = 10.0f;  // norm 10 -> clipped to 1
  const double norm = adam.step(p, g, lr, 0);
  EXPECT_NEAR(norm, 10.0, 1e-6);
  EXPECT_NEAR(g[l.output_norm], 1.0f, 1e-6);
  // Adam's first step moves by ~lr against the gradient's sign; no decay on a norm gain.
  EXPECT_NEAR(p[l.output_norm], 1.0f - lr, 1e-6);
  // A matrix entry with zero gradient only decays.
  EXPECT_NEAR(p[l.output], 1.0f - lr * o.adamw.weight_decay, 1e-7);
  std::vector<float> bad(l.total, NAN);
  const std::vector<float> before = p;
  EXPECT_ANY_THROW(adam.step(p, bad, lr, 1));
  EXPECT_EQ(p, before);  // a non-finite gradient fails before touching the parameters
}

}  // namespace
}  // namespace flashmem::lm
