// oracle:F as a two-pass run. Its selection needs the *true* attention of the next tau steps,
// which only exists once those steps have run, so:
//   pass 1: decode with full attention through the paged runtime (bit-identical to the plain
//           engine) while recording, for every selection cycle, each page's attention mass over
//           that cycle's steps (head-averaged, summed over layers and steps: OracleTrace);
//   pass 2: run again with policy oracle:F, which at each cycle boundary keeps the F fraction of
//           pages with the most recorded mass for the cycle about to run.
// Pass 2 either replays pass 1's tokens (teacher-forced: the masses describe exactly the tokens
// decoded, the evaluation harness's mode) or regenerates (`flashmem run`: the masses describe
// pass 1's tokens, so they stay exact up to the first token where the two runs diverge).
// Oracle is an upper bound for any lookahead predictor at the same budget, not a deployable
// policy: it costs a full-attention pass.
#pragma once
#include <cstdint>
#include <memory>
#include <span>
#include <vector>

#include "engine/generate.h"
#include "model/sampler.h"
#include "engine/session.h"
#include "runtime/paged_kv.h"

namespace flashmem {

// A session over a PagedKv with `options` (policy, budget, store, page geometry, ...); when
// `trace` is set it is passed as options.oracle_trace (recorded by `full`, read by oracle:F).
// Capacity: session.n_ctx, or the model's context length when 0.
std::unique_ptr<Session> make_paged_session(std::shared_ptr<const Model> model,
                                            const SessionOptions& session,
                                            PagedKvOptions options,
                                            std::shared_ptr<OracleTrace> trace = nullptr);

// Pass 1, teacher-forced: the prompt, then every token of `continuation` one decode step at a
// time, with full attention; returns the recorded masses. options.policy is ignored (full).
std::shared_ptr<OracleTrace> record_oracle_trace(std::shared_ptr<const Model> model,
                                                 const SessionOptions& session,
                                                 PagedKvOptions options,
                                                 std::span<const int32_t> prompt,
                                                 std::span<const int32_t> continuation);

struct OracleGeneration {
  std::vector<int32_t> full_tokens;    // pass 1's output (full attention)
  std::vector<int32_t> oracle_tokens;  // pass 2's output (oracle:F)
  GenerationStats full_stats, oracle_stats;
  LsaStats oracle_kv;                  // pass 2's KV accounting
  std::vector<float> oracle_resident_fraction_steps;  // pass 2's resident fraction per decode step
  std::shared_ptr<OracleTrace> trace;
};

// Both passes with generate(): pass 1 with full attention (recording), pass 2 regenerating with
// options.policy (oracle:F) and a fresh sampler of the same options (same seed), for at most as
// many tokens as pass 1 produced. request.on_token sees pass 2's tokens only.
OracleGeneration generate_with_oracle(std::shared_ptr<const Model> model,
                                      const SessionOptions& session, const PagedKvOptions& options,
                                      const SamplerOptions& sampling,
                                      const GenerationRequest& request);

}  // namespace flashmem
