#include "eval/eval_grid.h"

#include <algorithm>
#include <cmath>

#include "eval/rng.h"
#include "eval/wilson.h"
#include "model/generate.h"
#include "runtime/oracle.h"
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

int64_t PageSetup::tail_pages() const {
  return std::max(recent_pages, (tau + page_tokens - 1) / page_tokens + 1);
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
  std::vector<CellPlan> cells;
  for (const TaskFamily family : o.families) {
    for (const int64_t length : o.lengths) {
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

namespace {

// One sample's measurements.
struct SampleRun {
  std::vector<int32_t> output;
  GenerationStats gen;
  LsaStats kv;
  std::vector<float> steps;
};

SampleRun run_sample(const CellPlan& plan, const PagedKvOptions& kv, const GridRuntime& rt,
                     const TaskSample& s, int64_t max_tokens, std::unique_ptr<Session>& session,
                     int64_t& capacity) {
  SampleRun r;
  GenerationRequest request;
  request.prompt = s.tokens;
  request.max_tokens = max_tokens;
  request.is_end = [&](int32_t t) { return rt.tokenizer->is_eog(t); };
  request.on_token = [&](int32_t t) {
    r.output.push_back(t);
    return true;
  };
  const SamplerOptions greedy;  // temperature 0: argmax
  const int64_t need = static_cast<int64_t>(s.tokens.size()) + max_tokens;
  SessionOptions so = rt.session;
  so.n_ctx = std::max(need, plan.length + max_tokens);
  if (plan.policy == "oracle") {
    // Two passes: full attention records the masses, then oracle:F regenerates (runtime/oracle.h).
    const OracleGeneration g = generate_with_oracle(rt.model, so, kv, greedy, request);
    r.gen = g.oracle_stats;
    r.kv = g.oracle_kv;
    r.steps = g.oracle_resident_fraction_steps;
    return r;
  }
  if (session == nullptr || need > capacity) {
    capacity = so.n_ctx;
    session = make_paged_session(rt.model, so, kv);
  }
  session->reset();
  Sampler sampler(greedy);
  r.gen = generate(*session, sampler, request);
  const auto& paged = dynamic_cast<const PagedKv&>(session->kv());
  r.kv = paged.stats();
  r.steps = paged.resident_fraction_steps();
  return r;
}

}  // namespace

CellResult run_cell(const CellPlan& plan, const GridOptions& o, const GridRuntime& rt,
                    const std::function<void(int64_t)>& on_sample) {
  if (rt.model == nullptr || rt.tokenizer == nullptr) fail("run_cell needs a model and a tokenizer");
  const double start = now_seconds();
  PagedKvOptions kv;
  kv.policy = plan.spec;
  kv.budget = plan.policy == "lsa" ? plan.budget : -1;  // the others carry F in their spec
  kv.page_tokens = plan.pages.page_tokens;
  kv.tau = plan.pages.tau;
  kv.sink_pages = plan.pages.sink_pages;
  kv.recent_pages = plan.pages.recent_pages;
  kv.seed = o.seed;
  if (plan.policy == "lsa") {
    if (!rt.indexer) fail("policy lsa needs --indexer I.gguf");
    kv.indexer = rt.indexer;
  }
  CellResult c;
  c.plan = plan;
  c.n = o.samples;
  std::unique_ptr<Session> session;
  int64_t capacity = 0;
  double solved = 0;
  for (int64_t i = 0; i < o.samples; ++i) {
    TaskSpec spec;
    spec.family = plan.family;
    spec.length = plan.length;
    spec.value = o.value;
    spec.filler = o.filler;
    const TaskSample s = generate_task(
        spec, mix_seed(o.seed + static_cast<uint64_t>(plan.length), static_cast<uint64_t>(i)), *rt.tokenizer);
    std::string joined;
    for (const std::string& a : s.answers) joined += " " + a + ",";
    const int64_t max_tokens = static_cast<int64_t>(rt.tokenizer->encode(joined, false).size()) + o.extra_tokens;
    const SampleRun r = run_sample(plan, kv, rt, s, max_tokens, session, capacity);

    const double score = score_output(s.answers, rt.tokenizer->decode(r.output));
    const auto n_answers = static_cast<double>(s.answers.size());
    c.accuracy += score;
    c.answers_found += std::round(score * n_answers);
    c.answers_total += n_answers;
    solved += score == 1.0 ? 1 : 0;
    c.resident_fraction_avg += r.kv.resident_fraction_avg;
    for (const float f : r.steps) c.resident_fraction_peak = std::max<double>(c.resident_fraction_peak, f);
    c.resident_kv_bytes_avg += static_cast<double>(r.kv.resident_kv_bytes_avg);
    c.resident_kv_bytes_peak = std::max(c.resident_kv_bytes_peak, r.kv.resident_kv_bytes_peak);
    c.full_kv_bytes_avg += static_cast<double>(r.kv.full_kv_bytes);
    c.attn_bytes_per_step += static_cast<double>(r.kv.attn_bytes_per_step);
    c.decode_tokens += r.gen.generated_tokens;
    c.decode_seconds += r.gen.decode_seconds;
    if (i == 0) c.resident_fraction_steps = r.steps;
    if (on_sample) on_sample(i);
  }
  const auto n = static_cast<double>(o.samples);
  c.accuracy /= n;
  c.solved = solved / n;
  const Interval per_answer = wilson_interval(c.answers_found, c.answers_total);
  c.ci_low = per_answer.low;
  c.ci_high = per_answer.high;
  const Interval per_sample = wilson_interval(solved, n);
  c.solved_ci_low = per_sample.low;
  c.solved_ci_high = per_sample.high;
  c.resident_fraction_avg /= n;
  c.resident_kv_bytes_avg /= n;
  c.full_kv_bytes_avg /= n;
  c.attn_bytes_per_step /= n;
  c.decode_tok_s = c.decode_seconds > 0 ? static_cast<double>(c.decode_tokens) / c.decode_seconds : 0;
  c.seconds = now_seconds() - start;
  return c;
}

}  // namespace flashmem::eval
