#include "eval/eval_grid.h"

#include <algorithm>
#include <cmath>

#include "eval/task_run.h"
#include "engine/generate.h"
#include "engine/oracle.h"
#include "runtime/paged_kv.h"
#include "select/policy.h"
#include "tokenizer/tokenizer.h"
#include "util/error.h"
#include "util/timer.h"

namespace flashmem::eval {

const std::vector<std::string>& grid_policy_names() {
  static const std::vector<std::string> names = {"full",  "window", "recency", "random",
                                                 "quest", "oracle", "lsa"};
  return names;
}

bool policy_takes_budget(const std::string& name) { return name != "full" && name != "window"; }

void validate_grid_options(const GridOptions& o, bool has_indexer) {
  if (o.families.empty()) fail("--suite names no task family");
  if (o.policies.empty()) fail("--policies is empty");
  if (o.lengths.empty()) fail("--lengths is empty");
  const auto& names = grid_policy_names();
  bool any_budgeted = false;
  for (const std::string& p : o.policies) {
    if (std::find(names.begin(), names.end(), p) == names.end())
      fail("--policies: unknown policy '{}' (full, window, recency, random, quest, oracle, lsa)", p);
    any_budgeted = any_budgeted || policy_takes_budget(p);
  }
  if (std::find(o.policies.begin(), o.policies.end(), "lsa") != o.policies.end() && !has_indexer)
    fail("policy lsa needs --indexer I.gguf");
  if (any_budgeted && o.budgets.empty()) fail("--budgets is empty");
  for (const double b : o.budgets)
    if (!(b > 0 && b <= 1)) fail("--budgets: {} is not a fraction in (0, 1]", b);
  // 64: below that a prompt is a handful of pages and the task's fixed text does not fit.
  for (const int64_t l : o.lengths)
    if (l < 64 || l > (int64_t{1} << 22)) fail("--lengths: {} is outside [64, 4194304]", l);
  if (o.samples < 1 || o.samples > 1000000) fail("--samples must be in [1, 1000000], got {}", o.samples);
  if (o.page_tokens != 0 && (o.page_tokens < 1 || o.page_tokens > 4096))
    fail("--page-tokens must be in [1, 4096], got {}", o.page_tokens);
  if (o.tau < 0 || o.tau > 65536) fail("--tau must be in [0, 65536], got {}", o.tau);
  if (o.sink_pages < 0 || o.recent_pages < 0) fail("--sink-pages and --recent-pages must be >= 0");
  if (o.extra_tokens < 0 || o.extra_tokens > 4096) fail("--extra-tokens must be in [0, 4096]");
}

int64_t auto_page_tokens(int64_t length, int64_t sink_pages, int64_t recent_pages) {
  // "Several" chosen pages = 3. The fixed pages are sink + tail + the open page, so at 1K
  // 16-token pages leave only 2 (64 pages, 10% = 6 = 1 + 2 + 1 + 2) and 5% leaves none; 8-token
  // pages leave 8 at 10% and 2 at 5%. Gives 8 at 1K, 16 at 2K, 32 at 4K, 64 from 8K.
  constexpr int64_t kChosenPages = 3;
  for (const int64_t p : {64, 32, 16, 8}) {
    PageGeometry g{(length + p - 1) / p, sink_pages, std::max<int64_t>(recent_pages, 2)};
    const auto fixed = static_cast<int64_t>(g.fixed_pages().size());
    if (budget_pages_for(g, 0.10) - fixed >= kChosenPages) return p;
  }
  return 4;
}

PageSetup page_setup(const GridOptions& o) {
  PageSetup p;
  p.sink_pages = o.sink_pages;
  p.recent_pages = o.recent_pages;
  p.page_tokens = o.page_tokens > 0 ? o.page_tokens
                                    : auto_page_tokens(*std::min_element(o.lengths.begin(), o.lengths.end()),
                                                       o.sink_pages, o.recent_pages);
  // tau = one page keeps the recency tail at two pages; the answers are a few dozen tokens, so
  // a longer cycle would only make the tail (not the policy) hold the budget.
  p.tau = o.tau > 0 ? o.tau : p.page_tokens;
  return p;
}

int64_t quest_pages_for(double fraction, int64_t length, const PageSetup& p) {
  PageGeometry g{(length + p.page_tokens - 1) / p.page_tokens, p.sink_pages, p.tail_pages()};
  const auto fixed = static_cast<int64_t>(g.fixed_pages().size());
  return std::max<int64_t>(1, budget_pages_for(g, fraction) - fixed);
}

std::vector<CellPlan> plan_grid(const GridOptions& o) {
  const PageSetup pages = page_setup(o);
  std::vector<double> budgets = o.budgets;
  std::sort(budgets.begin(), budgets.end());
  budgets.erase(std::unique(budgets.begin(), budgets.end()), budgets.end());
  std::vector<int64_t> lengths;  // as given, without repeats
  for (const int64_t l : o.lengths)
    if (std::find(lengths.begin(), lengths.end(), l) == lengths.end()) lengths.push_back(l);
  std::vector<CellPlan> cells;
  for (const data::TaskFamily family : o.families) {
    for (const int64_t length : lengths) {
      for (const std::string& name : grid_policy_names()) {
        if (std::find(o.policies.begin(), o.policies.end(), name) == o.policies.end()) continue;
        CellPlan c{family, length, name, -1, name, pages};
        if (!policy_takes_budget(name)) {
          cells.push_back(c);
          continue;
        }
        for (const double b : budgets) {
          c.budget = b;
          if (name == "quest") c.spec = fmt::format("quest:{}", quest_pages_for(b, length, pages));
          else if (name == "lsa") c.spec = "lsa";  // the fraction goes to --budget
          else c.spec = fmt::format("{}:{}", name, b);
          cells.push_back(c);
        }
      }
    }
  }
  return cells;
}

CellRunner::CellRunner(const CellPlan& plan, const GridOptions& o, const GridRuntime& rt)
    : plan_(plan), o_(o), rt_(rt), kv_(std::make_unique<PagedKvOptions>()) {
  if (rt.model == nullptr || rt.tokenizer == nullptr) fail("the eval grid needs a model and a tokenizer");
  kv_->policy = plan.spec;
  kv_->budget = plan.policy == "lsa" ? plan.budget : -1;  // the others carry F in their spec
  kv_->page_tokens = plan.pages.page_tokens;
  kv_->tau = plan.pages.tau;
  kv_->sink_pages = plan.pages.sink_pages;
  kv_->recent_pages = plan.pages.recent_pages;
  kv_->seed = o.seed;
  if (plan.policy == "lsa") {
    if (!rt.indexer) fail("policy lsa needs --indexer I.gguf");
    kv_->indexer = rt.indexer;
  }
}

CellRunner::~CellRunner() = default;

SampleResult CellRunner::run(int64_t index) {
  const double start = now_seconds();
  const Tokenizer& tok = *rt_.tokenizer;
  data::TaskSpec spec;
  spec.family = plan_.family;
  spec.length = plan_.length;
  spec.value = o_.value;
  spec.filler = o_.filler;
  const data::TaskSample s = cell_sample(spec, o_.seed, index, tok);
  const int64_t max_tokens = answer_token_budget(s, tok, o_.extra_tokens);
  std::vector<int32_t> output;
  const GenerationRequest request = answer_request(s, max_tokens, tok, output);
  const SamplerOptions greedy;  // temperature 0: argmax
  const int64_t need = static_cast<int64_t>(s.tokens.size()) + max_tokens;
  SessionOptions so = rt_.session;
  so.n_ctx = std::max(need, plan_.length + max_tokens);
  GenerationStats gen;
  LsaStats kv;
  std::vector<float> steps;  // [decode steps] resident fraction
  if (plan_.policy == "oracle") {
    // Two passes: full attention records the masses, then oracle:F regenerates (runtime/oracle.h).
    OracleGeneration g = generate_with_oracle(rt_.model, so, *kv_, greedy, request);
    gen = g.oracle_stats;
    kv = g.oracle_kv;
    steps = std::move(g.oracle_resident_fraction_steps);
  } else {
    if (session_ == nullptr || need > capacity_) {
      capacity_ = so.n_ctx;
      session_ = make_paged_session(rt_.model, so, *kv_);
    }
    session_->reset();
    Sampler sampler(greedy);
    gen = generate(*session_, sampler, request);
    const PagedKv& paged = *session_->paged();  // make_paged_session: always paged
    kv = paged.stats();
    steps = paged.resident_fraction_steps();
  }
  SampleResult r = scored_sample(s.answers, tok.decode(output));
  r.resident_fraction_steps = std::move(steps);
  r.resident_fraction_avg = kv.resident_fraction_avg;
  for (const float f : r.resident_fraction_steps) r.resident_fraction_peak = std::max<double>(r.resident_fraction_peak, f);
  r.resident_kv_bytes_avg = kv.resident_kv_bytes_avg;
  r.resident_kv_bytes_peak = kv.resident_kv_bytes_peak;
  r.full_kv_bytes = kv.full_kv_bytes;
  r.attn_bytes_per_step = kv.attn_bytes_per_step;
  r.decode_tokens = gen.generated_tokens;
  r.decode_seconds = gen.decode_seconds;
  r.seconds = now_seconds() - start;
  return r;
}

CellResult run_cell(const CellPlan& plan, const GridOptions& o, const GridRuntime& rt,
                    const std::function<void(int64_t)>& on_sample) {
  CellRunner runner(plan, o, rt);
  std::vector<SampleResult> samples;
  for (int64_t i = 0; i < o.samples; ++i) {
    samples.push_back(runner.run(i));
    if (on_sample) on_sample(i);
  }
  return summarize_cell(plan, samples);
}

}  // namespace flashmem::eval
