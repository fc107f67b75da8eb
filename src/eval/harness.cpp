#include "eval/harness.h"

#include "eval/task_run.h"
#include "engine/generate.h"
#include "engine/session.h"
#include "tokenizer/tokenizer.h"
#include "util/error.h"
#include "util/timer.h"

namespace flashmem::eval {

std::vector<CellResult> evaluate_tasks(
    const HarnessOptions& o, const Tokenizer& tokenizer,
    const std::function<std::unique_ptr<Session>(int64_t n_ctx)>& make_session,
    const std::function<void(const data::TaskSample&, const std::string&, double)>& on_sample) {
  if (o.samples < 1) fail("samples must be >= 1");
  if (o.extra_tokens < 0 || o.extra_tokens > 4096) fail("extra tokens must be in [0, 4096]");
  std::vector<CellResult> results;
  for (const data::TaskFamily family : o.families) {
    for (const int64_t length : o.lengths) {
      CellPlan plan;
      plan.family = family;
      plan.length = length;
      std::vector<SampleResult> samples;
      std::unique_ptr<Session> session;
      int64_t capacity = 0;
      for (int64_t i = 0; i < o.samples; ++i) {
        data::TaskSpec spec;
        spec.family = family;
        spec.length = length;
        spec.value = o.value;
        spec.filler = o.filler;
        const double start = now_seconds();
        const data::TaskSample s = cell_sample(spec, o.seed, i, tokenizer);
        const int64_t budget = answer_token_budget(s, tokenizer, o.extra_tokens);
        const int64_t need = static_cast<int64_t>(s.tokens.size()) + budget;
        if (session == nullptr || need > capacity) {
          capacity = std::max(need, length + budget);
          session.reset();  // first: with --kv-store disk:FILE the new one needs the file name
          session = make_session(capacity);
        }
        session->reset();
        SamplerOptions greedy;  // temperature 0: argmax
        Sampler sampler(greedy);
        std::vector<int32_t> out;
        const GenerationStats gen = generate(*session, sampler, answer_request(s, budget, tokenizer, out));
        const std::string text = tokenizer.decode(out);
        SampleResult r = scored_sample(s.answers, text);
        r.decode_tokens = gen.generated_tokens;
        r.decode_seconds = gen.decode_seconds;
        r.seconds = now_seconds() - start;
        samples.push_back(r);
        if (on_sample) on_sample(s, text, r.score);
      }
      results.push_back(summarize_cell(plan, samples));
    }
  }
  return results;
}

}  // namespace flashmem::eval
