// Task evaluation with the engine: generates samples, runs greedy generation in a Session, and
// scores the output with string-match-all. Used by `flashmem eval-tasks`.
#pragma once
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "data/task.h"
#include "eval/cell.h"

namespace flashmem {
class Session;
class Tokenizer;
}

namespace flashmem::eval {

struct HarnessOptions {
  std::vector<data::TaskFamily> families = {data::TaskFamily::kNiahSingle, data::TaskFamily::kNiahMultikey};
  std::vector<int64_t> lengths = {1024, 2048};
  int64_t samples = 50;  // per family and length
  uint64_t seed = 0;     // samples use data::mix_seed(seed + length, i): disjoint across lengths
  data::ValueKind value = data::ValueKind::kNumber;
  data::FillerKind filler = data::FillerKind::kNoise;
  int64_t extra_tokens = 8;  // generated beyond the answers' own token count
};

// One cell per family and length, in that order, summarised as `flashmem eval`'s cells are
// (summarize_cell); a cell's plan has the family and length only (the policy is the sessions').
// `make_session(n_ctx)` returns a fresh session able to hold n_ctx tokens. `on_sample` (may be
// empty) sees every sample with the model's output and its score.
std::vector<CellResult> evaluate_tasks(
    const HarnessOptions& o, const Tokenizer& tokenizer,
    const std::function<std::unique_ptr<Session>(int64_t n_ctx)>& make_session,
    const std::function<void(const data::TaskSample&, const std::string&, double)>& on_sample = {});

}  // namespace flashmem::eval
