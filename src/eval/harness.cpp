#include "eval/harness.h"

#include "eval/task_run.h"
#include "engine/generate.h"
#include "engine/session.h"
#include "tokenizer/tokenizer.h"
#include "util/error.h"

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
      CellResult cell{family, length, o.samples, 0, 0};
      std::unique_ptr<Session> session;
      int64_t capacity = 0;
      for (int64_t i = 0; i < o.samples; ++i) {
        data::TaskSpec spec;
        spec.family = family;
        spec.length = length;
        spec.value = o.value;
        spec.filler = o.filler;
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
        generate(*session, sampler, answer_request(s, budget, tokenizer, out));
        const std::string text = tokenizer.decode(out);
        const double score = data::score_output(s.answers, text);
        cell.score += score;
        cell.solved += score == 1.0 ? 1.0 : 0.0;
        if (on_sample) on_sample(s, text, score);
      }
      cell.score /= static_cast<double>(o.samples);
      cell.solved /= static_cast<double>(o.samples);
      results.push_back(cell);
    }
  }
  return results;
}

}  // namespace flashmem::eval
