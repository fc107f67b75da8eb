#include "engine/oracle.h"

#include "util/error.h"

namespace flashmem {

std::unique_ptr<Session> make_paged_session(std::shared_ptr<const Model> model,
                                            const SessionOptions& session, PagedKvOptions options,
                                            std::shared_ptr<OracleTrace> trace) {
  if (trace) options.oracle_trace = std::move(trace);
  return std::make_unique<Session>(std::move(model), session, options);
}

std::shared_ptr<OracleTrace> record_oracle_trace(std::shared_ptr<const Model> model,
                                                 const SessionOptions& session,
                                                 PagedKvOptions options,
                                                 std::span<const int32_t> prompt,
                                                 std::span<const int32_t> continuation) {
  if (prompt.empty()) fail("the oracle's recording pass needs a prompt");
  auto trace = std::make_shared<OracleTrace>();
  options.policy = PolicySpec{.kind = PolicyKind::kFull};
  auto s = make_paged_session(std::move(model), session, options, trace);
  s->forward(prompt, nullptr, false);
  for (const int32_t& t : continuation) s->forward(std::span(&t, 1), nullptr, false);
  return trace;
}

OracleGeneration generate_with_oracle(std::shared_ptr<const Model> model,
                                      const SessionOptions& session, const PagedKvOptions& options,
                                      const SamplerOptions& sampling,
                                      const GenerationRequest& request) {
  if (options.policy.kind != PolicyKind::kOracle)
    fail("generate_with_oracle needs policy oracle:F, not '{}'", to_string(options.policy));
  OracleGeneration out;
  out.trace = std::make_shared<OracleTrace>();

  const PagedKvOptions full = full_attention_options(options);  // pass 1 keeps everything resident
  auto recorder = make_paged_session(model, session, full, out.trace);
  Sampler full_sampler(sampling);
  GenerationRequest pass1 = request;
  pass1.on_token = [&](int32_t t) {
    out.full_tokens.push_back(t);
    return true;
  };
  out.full_stats = generate(*recorder, full_sampler, pass1);
  recorder.reset();

  auto oracle = make_paged_session(model, session, options, out.trace);
  Sampler oracle_sampler(sampling);
  GenerationRequest pass2 = request;
  pass2.max_tokens = out.full_stats.generated_tokens;
  pass2.on_token = [&](int32_t t) {
    out.oracle_tokens.push_back(t);
    return request.on_token ? request.on_token(t) : true;
  };
  out.oracle_stats = generate(*oracle, oracle_sampler, pass2);
  const PagedKv& kv = *oracle->paged();  // make_paged_session: always paged
  out.oracle_kv = kv.stats();
  out.oracle_resident_fraction_steps = kv.resident_fraction_steps();
  return out;
}

}  // namespace flashmem
