// One evaluation cell's numbers, shared by `flashmem eval` (eval_grid.h: a cell per family,
// length, policy and budget) and `flashmem eval-tasks` (harness.h: a cell per family and length):
// what one sample measured, and the one way samples are summarised into a cell.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "data/task.h"

namespace flashmem::eval {

// Effective page geometry of a cell: page size and tau after the automatic choices (eval_grid.h).
struct PageSetup {
  int64_t page_tokens = 64, tau = 64, sink_pages = 1, recent_pages = 2;
  // The runtime's always-resident tail (paged_kv.h tail_pages()).
  int64_t tail_pages() const;
};

// What one cell runs.
struct CellPlan {
  data::TaskFamily family = data::TaskFamily::kNiahSingle;
  int64_t length = 0;
  std::string policy;  // grid name: full, window, recency, ...
  double budget = -1;  // the fraction F; < 0 for full and window
  std::string spec;    // the runtime's policy string: "recency:0.1", "quest:5", "lsa", ...
  PageSetup pages;
};

// One sample's measurements: what a cell aggregates, and what a resumed cell reads back.
struct SampleResult {
  double score = 0;          // string-match-all fraction
  int64_t answers = 0;       // answers asked
  double answers_found = 0;  // round(score * answers)
  double resident_fraction_avg = 0, resident_fraction_peak = 0;
  uint64_t resident_kv_bytes_avg = 0, resident_kv_bytes_peak = 0;
  uint64_t full_kv_bytes = 0, attn_bytes_per_step = 0;
  int64_t decode_tokens = 0;
  double decode_seconds = 0;  // oracle: the second (selective) pass only
  double seconds = 0;         // wall time, passes and prefill included
  std::vector<float> resident_fraction_steps;  // [decode steps]
};

// The answer part of a sample: score (string-match-all of `answers` in `output`), answers asked
// and found. The KV and timing fields are left for the caller.
SampleResult scored_sample(const std::vector<std::string>& answers, const std::string& output);

struct CellResult {
  CellPlan plan;
  int64_t n = 0;                       // samples
  double accuracy = 0;                 // mean string-match-all over samples
  double answers_found = 0, answers_total = 0;  // per-answer counts (the CI's binomial)
  double ci_low = 0, ci_high = 1;      // Wilson 95% on answers_found / answers_total
  double solved = 0;                   // fraction of samples with every answer
  double solved_ci_low = 0, solved_ci_high = 1;  // Wilson 95% on the solved count
  double resident_fraction_avg = 0;    // mean of the per-sample decode averages (samples with >= 1 step)
  double resident_fraction_peak = 0;   // max over every decode step of every sample
  double resident_kv_bytes_avg = 0;    // mean over samples
  uint64_t resident_kv_bytes_peak = 0; // max over samples
  double full_kv_bytes_avg = 0;        // K+V of every position at the end, mean over samples
  double attn_bytes_per_step = 0;      // mean over samples
  int64_t decode_tokens = 0;
  double decode_seconds = 0;           // oracle: the second (selective) pass only
  double decode_tok_s = 0;
  double seconds = 0;                  // wall time of the samples, passes and prefill included
  std::vector<float> resident_fraction_steps;  // [decode steps] of sample 0
};

// Aggregates a cell's samples (all of them, in index order) into its report numbers.
CellResult summarize_cell(const CellPlan& plan, const std::vector<SampleResult>& samples);

}  // namespace flashmem::eval
