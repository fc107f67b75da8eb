// The accuracy-against-KV-budget grid behind `flashmem eval`: selection policies × budgets ×
// prompt lengths × task families × samples, every sample generated greedily through the paged
// two-tier runtime so the KV accounting (resident bytes and fraction, attention bytes read) is
// measured, not assumed. One cell = one (family, length, policy, budget); every policy of a
// (family, length) sees exactly the same samples, so cells compare pairwise.
#pragma once
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "data/task.h"
#include "kv/paged_defaults.h"
#include "model/session.h"

namespace flashmem {
class IndexerModel;
class Model;
class Tokenizer;
struct PagedKvOptions;
}  // namespace flashmem

namespace flashmem::eval {

// Policy names the grid accepts, in report order. full and window take no budget.
const std::vector<std::string>& grid_policy_names();
bool policy_takes_budget(const std::string& name);

struct GridOptions {
  std::vector<data::TaskFamily> families = {data::TaskFamily::kNiahSingle};
  std::vector<int64_t> lengths = {1024, 2048, 4096, 8192};
  std::vector<std::string> policies = {"full", "window", "recency", "random", "quest", "oracle"};
  std::vector<double> budgets = {0.05, 0.10, 0.15, 0.25};
  int64_t samples = 20;   // per cell
  uint64_t seed = 0;      // sample i of length L: data::mix_seed(seed + L, i), as eval-tasks
  int64_t page_tokens = 0;  // 0: auto_page_tokens(shortest length)
  int64_t tau = 0;          // decode steps per selection cycle; 0: one page (= page_tokens)
  int64_t sink_pages = kDefaultSinkPages, recent_pages = kDefaultRecentPages;
  data::ValueKind value = data::ValueKind::kNumber;
  data::FillerKind filler = data::FillerKind::kNoise;
  int64_t extra_tokens = 8;  // generated beyond the answers' own token count
};

// Throws Error naming the flag on anything invalid: unknown policy, budget outside (0, 1],
// length < 64, samples < 1, lsa without an indexer, empty lists, ...
void validate_grid_options(const GridOptions& o, bool has_indexer);

// Largest page size (64, 32, ..., 4 tokens) at which a 10% budget of a `length`-token prompt
// still holds at least 3 chosen pages besides the sink, the recency tail and the open page, with
// tau = one page (tail = max(recent_pages, 2) pages). 4 tokens is the floor: the indexer's chunk.
int64_t auto_page_tokens(int64_t length, int64_t sink_pages, int64_t recent_pages);

// Effective geometry of a grid: page size and tau after the automatic choices.
struct PageSetup {
  int64_t page_tokens = kDefaultPageTokens, tau = kDefaultTau, sink_pages = kDefaultSinkPages,
          recent_pages = kDefaultRecentPages;
  // The runtime's always-resident tail (paged_kv.h tail_pages()).
  int64_t tail_pages() const;
};
PageSetup page_setup(const GridOptions& o);

// quest:K for a budget fraction: K = budget pages of a `length`-token context minus the sink,
// tail and open page (at least 1), so quest reads about the same fraction per step as the others keep.
int64_t quest_pages_for(double fraction, int64_t length, const PageSetup& p);

struct CellPlan {
  data::TaskFamily family = data::TaskFamily::kNiahSingle;
  int64_t length = 0;
  std::string policy;  // grid name: full, window, recency, ...
  double budget = -1;  // the fraction F; < 0 for full and window
  std::string spec;    // the runtime's policy string: "recency:0.1", "quest:5", "lsa", ...
  PageSetup pages;
};

// Cells in report order: family, length, policy (grid_policy_names order), budget ascending.
std::vector<CellPlan> plan_grid(const GridOptions& o);

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

struct GridRuntime {
  std::shared_ptr<const Model> model;
  const Tokenizer* tokenizer = nullptr;
  SessionOptions session;                       // kv_type and threads; n_ctx is set per cell
  std::shared_ptr<const IndexerModel> indexer;  // lsa only
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

// Runs the samples of one cell, reusing one session (reset between samples) where it can.
class CellRunner {
 public:
  // Throws Error when lsa has no indexer.
  CellRunner(const CellPlan& plan, const GridOptions& o, const GridRuntime& rt);
  ~CellRunner();
  // Sample `index` (0-based) of the cell: generated, decoded greedily, scored and measured.
  SampleResult run(int64_t index);

 private:
  const CellPlan& plan_;
  const GridOptions& o_;
  const GridRuntime& rt_;
  std::unique_ptr<PagedKvOptions> kv_;  // the cell's runtime options
  std::unique_ptr<Session> session_;
  int64_t capacity_ = 0;
};

// Aggregates a cell's samples (all of them, in index order) into its report numbers.
CellResult summarize_cell(const CellPlan& plan, const std::vector<SampleResult>& samples);

// Runs and aggregates one cell; `on_sample` (may be empty) is called after each sample with its
// index.
CellResult run_cell(const CellPlan& plan, const GridOptions& o, const GridRuntime& rt,
                    const std::function<void(int64_t)>& on_sample = {});

}  // namespace flashmem::eval
