#include "eval/task_run.h"

#include <string>

#include "data/rng.h"
#include "tokenizer/tokenizer.h"

namespace flashmem::eval {

data::TaskSample cell_sample(const data::TaskSpec& spec, uint64_t seed, int64_t index, const Tokenizer& tokenizer) {
  return data::generate_task(spec, data::mix_seed(seed + static_cast<uint64_t>(spec.length), static_cast<uint64_t>(index)),
                       tokenizer);
}

int64_t answer_token_budget(const data::TaskSample& s, const Tokenizer& tokenizer, int64_t extra_tokens) {
  std::string joined;
  for (const std::string& a : s.answers) joined += " " + a + ",";
  return static_cast<int64_t>(tokenizer.encode(joined, false).size()) + extra_tokens;
}

GenerationRequest answer_request(const data::TaskSample& s, int64_t max_tokens, const Tokenizer& tokenizer,
                                 std::vector<int32_t>& output) {
  GenerationRequest request;
  request.prompt = s.tokens;
  request.max_tokens = max_tokens;
  request.is_end = [&tokenizer](int32_t t) { return tokenizer.is_eog(t); };
  request.on_token = [&output](int32_t t) {
    output.push_back(t);
    return true;
  };
  return request;
}

}  // namespace flashmem::eval
