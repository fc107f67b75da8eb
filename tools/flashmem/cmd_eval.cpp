// `flashmem eval -m MODEL [--indexer I.gguf] --suite FAMILY,... --policies P,... --budgets F,...
//  --lengths N,... --samples N --seed S [--page-tokens N] --out DIR [--json]`: task accuracy
// against KV budget for every selection policy (docs/EVAL.md), resumable and locked
// (eval/grid_dir.h); the resume notes go to stderr.
#include <fmt/format.h>

#include "commands.h"
#include "common.h"
#include "eval/eval_grid.h"
#include "eval/eval_report.h"
#include "eval/grid_dir.h"
#include "tokenizer/tokenizer.h"
#include "util/error.h"

namespace flashmem::cli {
namespace {

struct EvalArgs {
  WeightMemory weights = WeightMemory::kMap;  // --weights-memory
  std::string model, indexer, out = "eval-out", value = "number", filler = "noise", kv_type = "f16";
  std::vector<std::string> suite = {"niah_single"};
  std::vector<std::string> policies = {"full", "window", "recency", "random", "quest", "oracle"};
  eval::GridOptions grid;
  int threads = 0;
  bool json = false, progress = false;
};

std::vector<data::TaskFamily> parse_suite(const std::vector<std::string>& names) {
  std::vector<data::TaskFamily> families;
  for (const std::string& name : names) {
    if (name == "all") {
      for (const data::TaskFamily f : data::all_families()) families.push_back(f);
      continue;
    }
    try {
      families.push_back(data::parse_family(name));
    } catch (const Error& e) {
      fail("--suite: {}", e.what());
    }
  }
  std::vector<data::TaskFamily> unique;
  for (const data::TaskFamily f : families)
    if (std::find(unique.begin(), unique.end(), f) == unique.end()) unique.push_back(f);
  return unique;
}

std::string joined_command() {
  std::string s;
  for (const std::string& a : command_line()) {
    const bool quote = a.empty() || a.find_first_of(" \t'\"$\\") != std::string::npos;
    s += (s.empty() ? "" : " ") + (quote ? "'" + a + "'" : a);
  }
  return s;
}

void run_eval(EvalArgs a) {
  eval::GridOptions& o = a.grid;
  o.families = parse_suite(a.suite);
  o.policies = a.policies;
  try {
    o.value = data::parse_value_kind(a.value);
    o.filler = data::parse_filler_kind(a.filler);
  } catch (const Error& e) {
    fail("--value/--filler: {}", e.what());
  }
  eval::validate_grid_options(o, !a.indexer.empty());
  if (a.threads < 0) fail("--threads must be >= 0 (0 = all cores), got {}", a.threads);
  const DType kv_type = parse_kv_type(a.kv_type);
  const bool uses_lsa = std::find(o.policies.begin(), o.policies.end(), "lsa") != o.policies.end();
  if (!a.indexer.empty() && !uses_lsa) fail("--indexer is only used by policy lsa; add lsa to --policies");

  eval::GridDir dir = eval::open_grid_dir(a.out);

  auto model = Model::load(a.model, a.weights);
  const Tokenizer tokenizer = Tokenizer::from_gguf(model->file());
  // Every (family, length) must fit its task's fixed text: fail now, not hours into the run.
  eval::check_grid_fits(model->config(), tokenizer, o, kv_type);
  const eval::RunIdentity id = eval::run_identity(*model, a.model, a.indexer, a.kv_type);
  eval::GridRuntime rt;
  rt.model = model;
  rt.tokenizer = &tokenizer;
  rt.session.kv_type = kv_type;
  rt.session.n_threads = a.threads;
  if (!a.indexer.empty()) rt.indexer = std::make_shared<const IndexerModel>(IndexerModel::load(a.indexer));

  const eval::GridRecord record{.command = joined_command(),
                                .model_path = a.model,
                                .indexer_path = a.indexer,
                                .progress = a.progress,
                                .note = [](const std::string& line) { fmt::print(stderr, "eval: {}\n", line); }};
  const eval::GridRun run = eval::run_grid_in_dir(dir, o, rt, id, record);
  if (a.json) fmt::print("{}\n", eval::grid_cells_summary(run).dump());
  else fmt::print("{}", eval::render_markdown(run.results));
}

const CommandRegistration kEval("eval", [](CLI::App& app) {
  auto a = std::make_shared<EvalArgs>();
  auto* cmd = app.add_subcommand("eval", "Task accuracy against KV budget for every selection policy");
  cmd->add_option("-m,--model", a->model, "GGUF model")->required();
  cmd->add_option("--indexer", a->indexer, "Memory Indexer .gguf (needed by policy lsa)");
  cmd->add_option("--suite", a->suite, "task families (niah_single, niah_multikey, niah_multivalue, "
                                       "niah_multiquery, vt, fwe, or all)")
      ->delimiter(',')->capture_default_str();
  cmd->add_option("--policies", a->policies, "full, window, recency, random, quest, oracle, lsa")
      ->delimiter(',')->capture_default_str();
  cmd->add_option("--budgets", a->grid.budgets, "resident KV fractions in (0, 1]")->delimiter(',')->capture_default_str();
  cmd->add_option("--lengths", a->grid.lengths, "prompt lengths in tokens (>= 64)")->delimiter(',')->capture_default_str();
  cmd->add_option("--samples", a->grid.samples, "samples per cell")->capture_default_str();
  cmd->add_option("--seed", a->grid.seed, "sample seed")->capture_default_str();
  cmd->add_option("--page-tokens", a->grid.page_tokens, "tokens per KV page (0: chosen from the shortest length)")
      ->capture_default_str();
  cmd->add_option("--tau", a->grid.tau, "decode steps per selection cycle (0: one page)")->capture_default_str();
  cmd->add_option("--sink-pages", a->grid.sink_pages, "always-resident first pages")->capture_default_str();
  cmd->add_option("--recent-pages", a->grid.recent_pages, "always-resident newest pages")->capture_default_str();
  cmd->add_option("--extra-tokens", a->grid.extra_tokens, "tokens generated beyond the answers' length")
      ->capture_default_str();
  cmd->add_option("--value", a->value, "niah value kind: number | word | uuid")->capture_default_str();
  cmd->add_option("--filler", a->filler, "haystack: noise | words")->capture_default_str();
  cmd->add_option("--kv-type", a->kv_type, "KV cache type: f16 | f32 | q8_0")->capture_default_str();
  add_threads_option(cmd, a->threads);
  add_weights_memory_option(cmd, a->weights);
  cmd->add_option("--out", a->out, "output directory (results.json, results.md, *.svg)")->capture_default_str();
  cmd->add_flag("--json", a->json, "print the cells as one JSON object on the last line of stdout");
  cmd->add_flag("--progress", a->progress, "print the progress line even when stderr is not a terminal");
  cmd->callback([a] { run_eval(*a); });
});

}  // namespace
}  // namespace flashmem::cli
