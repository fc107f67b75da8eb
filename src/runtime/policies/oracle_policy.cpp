#include "runtime/policies/oracle_policy.h"

#include <algorithm>

#include "util/error.h"

namespace flashmem {

OracleRecorder::OracleRecorder(std::unique_ptr<SelectionPolicy> chooser, const PolicyContext& ctx)
    : PagePolicy(std::move(chooser)),
      trace_(ctx.options.oracle_trace),
      layout_(ctx.layout),
      tau_(ctx.options.tau) {
  reset();
}

void OracleRecorder::reset() {
  trace_->page_tokens = layout_.page_tokens;
  trace_->tau = tau_;
  trace_->cycle_page_mass.clear();
}

void OracleRecorder::observe_attention(std::span<const KvSpan> spans, int64_t decode_step,
                                       int64_t pos, const float* probs, int64_t n_heads,
                                       int64_t n_keys) {
  auto& cycles = trace_->cycle_page_mass;
  const auto cycle = static_cast<size_t>(decode_step / tau_);
  if (cycles.size() <= cycle) cycles.resize(cycle + 1);
  std::vector<float>& page_mass = cycles[cycle];
  const float per_head = 1.0f / static_cast<float>(n_heads);  // head average
  int64_t t = 0;
  for (const KvSpan& s : spans) {
    const int64_t n = std::clamp<int64_t>(pos + 1 - s.pos0, 0, s.n);  // as attention counts
    for (int64_t j = 0; j < n && t < n_keys; ++j, ++t) {
      float mass = 0;
      for (int64_t h = 0; h < n_heads; ++h) mass += probs[h * n_keys + t];
      const auto page = static_cast<size_t>(layout_.page_of(s.pos0 + j));
      if (page_mass.size() <= page) page_mass.resize(page + 1, 0.0f);
      page_mass[page] += mass * per_head;
    }
  }
}

OraclePolicy::OraclePolicy(std::unique_ptr<SelectionPolicy> chooser, const PolicyContext& ctx)
    : PagePolicy(std::move(chooser)), trace_(ctx.options.oracle_trace) {
  if (trace_ == nullptr)
    fail("policy {} needs the attention masses of a full-attention pass (runtime/oracle.h)",
         to_string(ctx.options.policy));
  if (trace_->page_tokens != ctx.options.page_tokens || trace_->tau != ctx.options.tau)
    fail("the oracle trace was recorded with {}-token pages and tau {}, not {} and {}",
         trace_->page_tokens, trace_->tau, ctx.options.page_tokens, ctx.options.tau);
}

std::vector<float> OraclePolicy::cycle_scores(const PageGeometry& g, int64_t cycle) {
  const auto& cycles = trace_->cycle_page_mass;
  const auto c = static_cast<size_t>(cycle);
  std::vector<float> scores = c < cycles.size() ? cycles[c] : std::vector<float>{};
  scores.resize(static_cast<size_t>(g.n_pages), 0.0f);
  return scores;
}

namespace {

[[noreturn]] void refuse_trace_state() {
  fail("a sequence of oracle:F (or one recording an oracle trace) cannot be persisted: its trace "
       "lives outside the sequence");
}

}  // namespace

void OracleRecorder::save_state(ByteWriter&) const { refuse_trace_state(); }
void OraclePolicy::save_state(ByteWriter&) const { refuse_trace_state(); }

}  // namespace flashmem
