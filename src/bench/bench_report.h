// `flashmem bench`'s report of a BenchResult: the text lines and the one-line JSON object.
#pragma once
#include <string>

#include <nlohmann/json.hpp>

#include "bench/bench_run.h"

namespace flashmem::bench {

// How the run was asked for, as the user spelled it (echoed in the report).
struct BenchLabels {
  std::string model;     // the model's path
  std::string kv_type;   // f16 | f32 | q8_0
  std::string fill;      // prefill | random
  std::string policy;    // the --policy; "" = none (plain contiguous cache)
  std::string kv_store;  // ram | disk:PATH
  // The paged runtime's caps and lookahead as given (the runtime's defaults when left out).
  double budget = -1;         // --budget; < 0: not given
  int64_t budget_tokens = 0;  // --budget-tokens; 0: not given
  int64_t lsa_prefetch = 0;   // --lsa-prefetch; 0: off
};

// The settings of `labels` that shape a paged row beyond its policy, for the JSON reports:
// budget (null when not given), budget_tokens (null when not given), lsa_prefetch.
nlohmann::json kv_settings_json(const BenchLabels& labels);

// The text report (several lines, each ending in '\n').
std::string render_bench_text(const BenchResult& r, const BenchLabels& labels);
// The JSON report; the paged runtime's fields only when r.kv is set.
nlohmann::json bench_to_json(const BenchResult& r, const BenchLabels& labels);

}  // namespace flashmem::bench
