#include "runtime/policies/page_policy.h"

#include "runtime/policies/lsa_policy.h"
#include "runtime/policies/oracle_policy.h"
#include "runtime/policies/quest_policy.h"
#include "util/error.h"

namespace flashmem {

std::vector<int64_t> PagePolicy::choose_step_pages(int64_t layer, const float* q, int64_t n,
                                                   const PageGeometry& g) {
  fail("policy {} chooses pages per cycle, not per step", chooser_->name());
}

// The chooser's state is text of a few KiB at most (random:F's generator: 312 words in decimal).
constexpr uint64_t kMaxChooserStateBytes = 1 << 16;

void PagePolicy::save_state(ByteWriter& out) const { out.put_string(chooser_->state()); }

void PagePolicy::load_state(ByteReader& in) {
  chooser_->set_state(in.get_string("chooser state", kMaxChooserStateBytes));
}

std::unique_ptr<PagePolicy> make_page_policy(const PolicyContext& ctx) {
  const PolicySpec& spec = ctx.options.policy;
  std::unique_ptr<SelectionPolicy> chooser = make_policy(spec);
  const bool has_trace = ctx.options.oracle_trace != nullptr;
  switch (spec.kind) {
    case PolicyKind::kLsa:
      if (has_trace) break;
      return std::make_unique<LsaPolicy>(std::move(chooser), ctx);
    case PolicyKind::kQuest:
      if (has_trace) break;
      return std::make_unique<QuestPolicy>(std::move(chooser), ctx);
    case PolicyKind::kOracle:
      return std::make_unique<OraclePolicy>(std::move(chooser), ctx);
    case PolicyKind::kFull:
      if (has_trace) return std::make_unique<OracleRecorder>(std::move(chooser), ctx);
      return std::make_unique<PagePolicy>(std::move(chooser));
    default:
      if (has_trace) break;
      return std::make_unique<PagePolicy>(std::move(chooser));
  }
  fail("an oracle trace is recorded by policy full and read by oracle:F, not by '{}'",
       to_string(spec));
}

}  // namespace flashmem
