// oracle:F as a two-pass run: the recorded masses are attention probabilities (per cycle they
// sum to layers x steps), oracle:1 equals full exactly, and each cycle's selection is the top
// pages by the recorded mass of that cycle.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <numeric>

#include "../common/stories_fixture.h"
#include "model/sampler.h"
#include "engine/session.h"
#include "engine/oracle.h"
#include "util/error.h"
#include "util/raw_array.h"

namespace flashmem {
namespace {

class OracleTest : public ::testing::Test {
 protected:
  std::shared_ptr<Model> model_ = test::load_stories260k();
  std::vector<int32_t> ids_ = test::stories_tokens();
  SessionOptions options_ = test::stories_session_options();
  static constexpr int64_t kPrompt = 300, kDecode = 100, kTau = 32;

  PagedKvOptions paged(const std::string& policy) const {
    PagedKvOptions o;
    o.policy = policy;
    o.page_tokens = 16;
    o.tau = kTau;
    return o;
  }
  // Greedy continuation of the prompt with the plain engine, and its decode logits.
  std::vector<int32_t> greedy(std::vector<float>* logits_out) {
    Session s(model_, options_);
    const int64_t V = model_->config().n_vocab;
    std::vector<float> logits(static_cast<size_t>(V));
    s.forward(std::span(ids_.data(), kPrompt), logits.data(), false);
    std::vector<int32_t> tokens;
    for (int64_t i = 0; i < kDecode; ++i) {
      tokens.push_back(argmax(logits));
      s.forward(std::span(&tokens.back(), 1), logits.data(), false);
      logits_out->insert(logits_out->end(), logits.begin(), logits.end());
    }
    return tokens;
  }
  // Teacher-forced decode logits of `tokens` in session s.
  std::vector<float> replay(Session& s, const std::vector<int32_t>& tokens,
                            const std::function<void(int64_t)>& after_step = nullptr) {
    const int64_t V = model_->config().n_vocab;
    std::vector<float> logits(static_cast<size_t>(V)), all;
    s.forward(std::span(ids_.data(), kPrompt), logits.data(), false);
    if (after_step) after_step(-1);
    for (size_t i = 0; i < tokens.size(); ++i) {
      s.forward(std::span(&tokens[i], 1), logits.data(), false);
      all.insert(all.end(), logits.begin(), logits.end());
      if (after_step) after_step(static_cast<int64_t>(i));
    }
    return all;
  }
};

TEST_F(OracleTest, RecordedMassesAreAttentionProbabilities) {
  std::vector<float> unused;
  const auto tokens = greedy(&unused);
  const auto trace = record_oracle_trace(model_, options_, paged("full"), std::span(ids_.data(), kPrompt), tokens);
  ASSERT_EQ(trace->tau, kTau);
  // 100 decode steps in cycles of 32: 32, 32, 32, 4.
  ASSERT_EQ(trace->cycle_page_mass.size(), 4u);
  const int64_t L = model_->config().n_layers;
  for (size_t c = 0; c < trace->cycle_page_mass.size(); ++c) {
    const auto& mass = trace->cycle_page_mass[c];
    const double steps = c < 3 ? 32 : 4;
    const double sum = std::accumulate(mass.begin(), mass.end(), 0.0);
    EXPECT_NEAR(sum, static_cast<double>(L) * steps, 1e-3 * L * steps) << "cycle " << c;
    for (float m : mass) EXPECT_GE(m, 0.0f);
    // Pages up to the last position the cycle saw, no further.
    EXPECT_EQ(static_cast<int64_t>(mass.size()), (kPrompt + static_cast<int64_t>(c * 32 + steps) - 1) / 16 + 1);
  }
}

TEST_F(OracleTest, OracleWithFractionOneEqualsFull) {
  std::vector<float> want;
  const auto tokens = greedy(&want);
  const auto trace = record_oracle_trace(model_, options_, paged("full"), std::span(ids_.data(), kPrompt), tokens);
  auto s = make_paged_session(model_, options_, paged("oracle:1"), trace);
  const auto got = replay(*s, tokens);
  ASSERT_EQ(got.size(), want.size());
  EXPECT_EQ(std::memcmp(got.data(), want.data(), got.size() * sizeof(float)), 0);
}

TEST_F(OracleTest, SelectionIsTheTopPagesByRecordedMass) {
  std::vector<float> unused;
  const auto tokens = greedy(&unused);
  const auto trace = record_oracle_trace(model_, options_, paged("full"), std::span(ids_.data(), kPrompt), tokens);
  auto s = make_paged_session(model_, options_, paged("oracle:0.5"), trace);
  const auto& kv = dynamic_cast<const PagedKv&>(s->kv());
  int checked = 0;
  replay(*s, tokens, [&](int64_t step) {
    if ((step + 1) % kTau != 0) return;  // a cycle boundary: after the prompt and every tau steps
    const auto c = static_cast<size_t>((step + 1) / kTau);
    const int64_t n_pages = (kPrompt + step + 1) / 16 + 1;
    const PageGeometry g{n_pages, 1, 3};  // tail_pages(): tau 32 over 16-token pages -> 3
    std::vector<float> mass = c < trace->cycle_page_mass.size() ? trace->cycle_page_mass[c] : std::vector<float>{};
    mass.resize(static_cast<size_t>(n_pages), 0.0f);
    std::vector<int64_t> middle(static_cast<size_t>(g.n_middle_pages()));
    std::iota(middle.begin(), middle.end(), g.sink_pages);
    std::sort(middle.begin(), middle.end(), [&](int64_t a, int64_t b) {
      return mass[a] > mass[b] || (mass[a] == mass[b] && a > b);
    });
    const auto fixed = g.fixed_pages();
    const int64_t keep = std::clamp<int64_t>(
        static_cast<int64_t>(std::floor(0.5 * n_pages)) - static_cast<int64_t>(fixed.size()), 0,
        g.n_middle_pages());
    std::vector<int64_t> want(middle.begin(), middle.begin() + keep);
    want.insert(want.end(), fixed.begin(), fixed.end());
    std::sort(want.begin(), want.end());
    EXPECT_EQ(kv.selection(), want) << "cycle " << c;
    EXPECT_GT(keep, 0);
    ++checked;
  });
  EXPECT_EQ(checked, 4);  // after the prompt and after steps 32, 64, 96
  EXPECT_LT(kv.stats().attn_bytes_per_step, kv.stats().full_kv_bytes * 7 / 10);
}

TEST_F(OracleTest, GenerateTwoPassesFractionOneRepeatsTheFullOutput) {
  GenerationRequest request;
  request.prompt = std::span(ids_.data(), 50);
  request.max_tokens = 80;
  const auto out = generate_with_oracle(model_, options_, paged("oracle:1"), SamplerOptions{}, request);
  EXPECT_EQ(out.full_tokens.size(), 80u);
  EXPECT_EQ(out.oracle_tokens, out.full_tokens);
  const auto sparse = generate_with_oracle(model_, options_, paged("oracle:0.3"), SamplerOptions{}, request);
  EXPECT_EQ(sparse.full_tokens, out.full_tokens);  // pass 1 is full attention either way
  EXPECT_EQ(sparse.oracle_kv.cycles, 3);  // after the prompt and after decode steps 32 and 64
}

TEST_F(OracleTest, BadUsesRejected) {
  EXPECT_THROW(make_paged_session(model_, options_, paged("oracle:0.2")), Error);  // no trace
  auto trace = std::make_shared<OracleTrace>();
  trace->page_tokens = 64;  // recorded with other pages
  trace->tau = kTau;
  EXPECT_THROW(make_paged_session(model_, options_, paged("oracle:0.2"), trace), Error);
  EXPECT_THROW(make_paged_session(model_, options_, paged("recency:0.2"), trace), Error);
  GenerationRequest request;
  request.prompt = std::span(ids_.data(), 10);
  EXPECT_THROW(generate_with_oracle(model_, options_, paged("full"), SamplerOptions{}, request), Error);
}

}  // namespace
}  // namespace flashmem
