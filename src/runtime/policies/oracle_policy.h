// The two halves of oracle:F (runtime/oracle.h runs them as two passes):
//   OracleRecorder: policy full with an oracle trace; keeps everything resident and records,
//     per selection cycle, each page's decode attention mass into the trace;
//   OraclePolicy: oracle:F; at each cycle boundary scores every page by the recorded mass of
//     the cycle about to run (the chooser keeps the F fraction with the most).
#pragma once
#include <memory>

#include "runtime/policies/page_policy.h"

namespace flashmem {

class OracleRecorder final : public PagePolicy {
 public:
  OracleRecorder(std::unique_ptr<SelectionPolicy> chooser, const PolicyContext& ctx);

  bool observes_attention() const override { return true; }
  // Each page gains its keys' head-averaged probability, so one layer's step adds 1 in total
  // over all pages.
  void observe_attention(std::span<const KvSpan> spans, int64_t decode_step, int64_t pos,
                         const float* probs, int64_t n_heads, int64_t n_keys) override;
  // Clears the trace and stamps it with this sequence's page size and tau.
  void reset() override;
  // Error: the trace lives outside the sequence.
  void save_state(ByteWriter& out) const override;

 private:
  std::shared_ptr<OracleTrace> trace_;
  PageLayout layout_;
  int64_t tau_ = 0;
};

class OraclePolicy final : public PagePolicy {
 public:
  // Throws Error without a trace or with one recorded at another page size or tau.
  OraclePolicy(std::unique_ptr<SelectionPolicy> chooser, const PolicyContext& ctx);

  // The masses of the cycle this selection serves; a cycle the trace never reached (the replay
  // decodes further than the recording did) scores every page 0.
  std::vector<float> cycle_scores(const PageGeometry& g, int64_t cycle) override;
  // Error: the trace lives outside the sequence.
  void save_state(ByteWriter& out) const override;

 private:
  std::shared_ptr<const OracleTrace> trace_;
};

}  // namespace flashmem
