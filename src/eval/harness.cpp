#include "eval/harness.h"

#include "eval/rng.h"
#include "model/generate.h"
#include "model/session.h"
#include "tokenizer/tokenizer.h"
#include "util/error.h"

namespace flashmem::eval {

std::vector<CellResult> evaluate_tasks(
    const HarnessOptions& o, const Tokenizer& tokenizer,
    const std::function<std::unique_ptr<Session>(int64_t n_ctx)>& make_session,
    const std::function<void(const TaskSample&, const std::string&, double)>& on_sample) {
  if (o.samples < 1) fail("samples must be >= 1");
  if (o.extra_tokens < 0 || o.extra_tokens > 4096) fail("extra tokens must be in [0, 4096]");
  std::vector<CellResult> results;
  for (const TaskFamily family : o.families) {
    for (const int64_t length : o.lengths) {
      CellResult cell{family, length, o.samples, 0, 0};
      std::unique_ptr<Session> session;
      int64_t capacity = 0;
      for (int64_t i = 0; i < o.samples; ++i) {
        TaskSpec spec;
        spec.family = family;
        spec.length = length;
        spec.value = o.value;
        spec.filler = o.filler;
        const TaskSample s = generate_task(
            spec, mix_seed(o.seed + static_cast<uint64_t>(length), static_cast<uint64_t>(i)), tokenizer);
        std::string joined;
        for (const std::string& a : s.answers) joined += " " + a + ",";
        const int64_t budget =
            static_cast<int64_t>(tokenizer.encode(joined, false).size()) + o.extra_tokens;
        const int64_t need = static_cast<int64_t>(s.tokens.size()) + budget;
        if (session == nullptr || need > capacity) {
          capacity = std::max(need, length + budget);
          session = make_session(capacity);
        }
        session->reset();
        SamplerOptions greedy;  // temperature 0: argmax
        Sampler sampler(greedy);
        std::vector<int32_t> out;
        GenerationRequest request;
        request.prompt = s.tokens;
        request.max_tokens = budget;
        request.is_end = [&](int32_t t) { return tokenizer.is_eog(t); };
        request.on_token = [&](int32_t t) {
          out.push_back(t);
          return true;
        };
        generate(*session, sampler, request);
        const std::string text = tokenizer.decode(out);
        const double score = score_output(s.answers, text);
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
