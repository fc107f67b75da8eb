// Running one generated task sample with the engine, shared by `eval-tasks` (harness.h) and
// `eval` (eval_grid.h): which samples a cell holds, how many tokens an answer may take, and the
// greedy generation request.
#pragma once
#include <cstdint>
#include <vector>

#include "data/task.h"
#include "engine/generate.h"

namespace flashmem::eval {

// Sample `index` of the cell (spec's family and length): seed mix_seed(seed + length, index), so
// cells of different lengths never share samples. eval-tasks and eval use the same samples.
data::TaskSample cell_sample(const data::TaskSpec& spec, uint64_t seed, int64_t index, const Tokenizer& tokenizer);
// Tokens to generate for a sample: its answers' own tokens plus `extra_tokens`.
int64_t answer_token_budget(const data::TaskSample& s, const Tokenizer& tokenizer, int64_t extra_tokens);
// The generation request of a sample: its prompt, at most max_tokens, stopping at end-of-
// generation tokens, every generated token appended to `output` (tokenizer and output must
// outlive the request).
GenerationRequest answer_request(const data::TaskSample& s, int64_t max_tokens, const Tokenizer& tokenizer,
                                 std::vector<int32_t>& output);

}  // namespace flashmem::eval
