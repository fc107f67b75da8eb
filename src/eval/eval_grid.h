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
#include "engine/session.h"
#include "eval/cell.h"

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
  int64_t sink_pages = 1, recent_pages = 2;
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
PageSetup page_setup(const GridOptions& o);

// quest:K for a budget fraction: K = budget pages of a `length`-token context minus the sink,
// tail and open page (at least 1), so quest reads about the same fraction per step as the others keep.
int64_t quest_pages_for(double fraction, int64_t length, const PageSetup& p);

// Cells in report order: family, length, policy (grid_policy_names order), budget ascending.
std::vector<CellPlan> plan_grid(const GridOptions& o);

struct GridRuntime {
  std::shared_ptr<const Model> model;
  const Tokenizer* tokenizer = nullptr;
  SessionOptions session;                       // kv_type and threads; n_ctx is set per cell
  std::shared_ptr<const IndexerModel> indexer;  // lsa only
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

// Runs and aggregates one cell; `on_sample` (may be empty) is called after each sample with its
// index.
CellResult run_cell(const CellPlan& plan, const GridOptions& o, const GridRuntime& rt,
                    const std::function<void(int64_t)>& on_sample = {});

}  // namespace flashmem::eval
