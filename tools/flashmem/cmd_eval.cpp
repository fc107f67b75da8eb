// `flashmem eval -m MODEL [--indexer I.gguf] --suite FAMILY,... --policies P,... --budgets F,...
//  --lengths N,... --samples N --seed S [--page-tokens N] --out DIR [--json]`: task accuracy
// against KV budget for every selection policy (docs/EVAL.md). Resumable: cells already in
// DIR/results.json with the same configuration and a checksum that verifies are reused (any other
// is recomputed, with a note on stderr: eval/results_file.h), results.json is rewritten
// (atomically) after every finished cell, and DIR/partial.json holds the samples of the cell in
// progress, so an interrupted run loses at most the sample it was running. DIR is locked for the
// run (util/dir_lock.h): a second eval into it stops with an error instead of losing cells.
#include <fmt/format.h>

#include <filesystem>
#include <nlohmann/json.hpp>

#include "commands.h"
#include "common.h"
#include "eval/eval_grid.h"
#include "eval/eval_report.h"
#include "eval/results_file.h"
#include "eval/task_run.h"
#include "tokenizer/tokenizer.h"
#include "util/atomic_file.h"
#include "util/dir_lock.h"
#include "util/error.h"
#include "util/mapped_file.h"
#include "util/read_file.h"
#include "util/sha256.h"
#include "util/timer.h"

namespace flashmem::cli {
namespace {

namespace fs = std::filesystem;
using nlohmann::json;

struct EvalArgs {
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

json load_partial(const fs::path& path) {
  if (!fs::exists(path)) return nullptr;
  try {
    return json::parse(read_file(path.string()), nullptr, /*allow_exceptions=*/false);
  } catch (const Error&) {
    return nullptr;  // unreadable: only a cache, like one that does not parse
  }
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

  const fs::path dir(a.out);
  std::error_code ec;
  fs::create_directories(dir, ec);
  if (ec || !fs::is_directory(dir)) fail("cannot create --out directory '{}': {}", a.out, ec.message());
  // One writer of DIR at a time: two grids into one results.json would each rewrite it from
  // what they read at their start, and one would lose the other's cells.
  const DirLock lock = DirLock::lock_directory(a.out);
  const fs::path results_path = dir / "results.json";
  const json previous = eval::read_results(results_path.string());

  auto model = Model::load(a.model);
  const Tokenizer tokenizer = Tokenizer::from_gguf(model->file());
  // Every (family, length) must fit its task's fixed text: fail now, not hours into the run.
  for (const data::TaskFamily f : o.families)
    for (const int64_t l : o.lengths) {
      data::TaskSpec spec;
      spec.family = f;
      spec.length = l;
      spec.value = o.value;
      spec.filler = o.filler;
      try {
        const data::TaskSample sample = data::generate_task(spec, o.seed, tokenizer);
        // A cell's context (eval_grid.cpp): the prompt and the answer budget, within the trained
        // context (eval has no -c: a length the model was not trained for is refused up front).
        cli_context(model->config(),
                    {.prompt_tokens = std::max(l, static_cast<int64_t>(sample.tokens.size())),
                     .max_new_tokens = eval::answer_token_budget(sample, tokenizer, o.extra_tokens),
                     .n_ctx = std::nullopt,
                     .kv_type = kv_type},
                    "ram");
      } catch (const Error& e) {
        fail("--lengths: {}", e.what());
      }
    }
  eval::RunIdentity id;
  id.model_name = fs::path(a.model).filename().string();
  id.model_sha256 = sha256_hex(model->file().file_data(), static_cast<size_t>(model->file().data_offset()));
  id.kv_type = a.kv_type;
  eval::GridRuntime rt;
  rt.model = model;
  rt.tokenizer = &tokenizer;
  rt.session.kv_type = kv_type;
  rt.session.n_threads = a.threads;
  if (!a.indexer.empty()) {
    const MappedFile file(a.indexer);
    id.indexer_name = fs::path(a.indexer).filename().string();
    id.indexer_sha256 = sha256_hex(file.data(), file.size());
    rt.indexer = std::make_shared<const IndexerModel>(IndexerModel::load(a.indexer));
  }

  json results = {{"version", 1},
                  {"command", joined_command()},
                  {"model", {{"name", id.model_name}, {"path", a.model}, {"sha256", id.model_sha256}}},
                  {"indexer", a.indexer.empty() ? json(nullptr)
                                                : json{{"name", id.indexer_name}, {"path", a.indexer},
                                                       {"sha256", id.indexer_sha256}}},
                  {"cells", json::array()}};
  const std::vector<eval::CellPlan> plan = eval::plan_grid(o);
  std::vector<json> cells(plan.size()), configs(plan.size());
  std::vector<bool> resumed(plan.size(), false);
  const fs::path partial_path = dir / "partial.json";
  const json partial = load_partial(partial_path);
  int64_t reused = 0, samples_to_run = 0;
  // Stored cells: the earlier grid's "cells" plus the "other_cells" kept from grids before it;
  // only those whose checksum verifies are reused.
  const eval::StoredCells stored = eval::stored_cells(previous);
  for (size_t i = 0; i < plan.size(); ++i) {
    configs[i] = eval::cell_config(plan[i], o, id);
    if (const json* c = eval::find_cell(stored.verified, configs[i])) {
      cells[i] = *c;
      resumed[i] = true;
      ++reused;
      continue;
    }
    if (eval::find_cell(stored.unverified, configs[i]) != nullptr)
      fmt::print(stderr, "eval: {}@{} {}: the stored cell in {} has no valid checksum (edited or damaged): "
                         "recomputing it\n", data::family_name(plan[i].family), plan[i].length, plan[i].spec,
                 results_path.string());
    samples_to_run += o.samples - static_cast<int64_t>(eval::partial_samples(partial, configs[i]).size());
  }
  // Stored cells this grid does not contain stay in results.json under "other_cells" (never
  // lost, not reported), so running a different grid into the same DIR keeps earlier results.
  // An unverified one is kept as it is (still never reused); one of this grid is replaced.
  json other_cells = json::array();
  for (const json* list : {&stored.verified, &stored.unverified})
    for (const json& c : *list)
      if (std::none_of(configs.begin(), configs.end(),
                       [&](const json& k) { return c.is_object() && c.contains("config") && c.at("config") == k; }))
        other_cells.push_back(c);
  if (!other_cells.empty()) results["other_cells"] = other_cells;
  if (reused > 0)
    fmt::print(stderr, "eval: {} of {} cells already in {} with the same configuration: skipping them\n",
               reused, plan.size(), results_path.string());
  if (!other_cells.empty())
    fmt::print(stderr, "eval: {} cells of {} are not in this grid: kept there under \"other_cells\"\n",
               other_cells.size(), results_path.string());
  const eval::PageSetup pages = eval::page_setup(o);
  fmt::print(stderr, "eval: {} cells, {} samples to run; pages of {} tokens{}, tau {}\n", plan.size(),
             samples_to_run, pages.page_tokens, o.page_tokens > 0 ? "" : " (auto)", pages.tau);

  auto write_results = [&] {
    json done = json::array();
    for (const json& c : cells)
      if (!c.is_null()) done.push_back(c);
    results["cells"] = done;
    write_file_atomic(results_path.string(), results.dump(1) + "\n");
  };
  ProgressLine progress("eval", samples_to_run, "samples", a.progress);
  int64_t done_samples = 0;
  for (size_t i = 0; i < plan.size(); ++i) {
    if (resumed[i]) continue;
    const eval::CellPlan& p = plan[i];
    const std::string label = fmt::format("{}@{} {}", data::family_name(p.family), p.length, p.spec);
    std::string why;
    std::vector<eval::SampleResult> samples = eval::partial_samples(partial, configs[i], &why);
    if (!why.empty())
      fmt::print(stderr, "eval: {}: the samples in {} are not used ({}): recomputing them\n", label,
                 partial_path.string(), why);
    json partial_samples = json::array();
    for (const eval::SampleResult& r : samples) partial_samples.push_back(eval::sample_to_json(r));
    if (!samples.empty())
      fmt::print(stderr, "eval: {}: {} of {} samples already in {}\n", label, samples.size(), o.samples,
                 partial_path.string());
    eval::CellRunner runner(p, o, rt);
    for (auto k = static_cast<int64_t>(samples.size()); k < o.samples; ++k) {
      samples.push_back(runner.run(k));
      partial_samples.push_back(eval::sample_to_json(samples.back()));
      write_file_atomic(partial_path.string(), eval::partial_to_json(configs[i], partial_samples).dump() + "\n");
      progress.update(++done_samples, label);
    }
    cells[i] = eval::seal(eval::cell_to_json(eval::summarize_cell(p, samples), configs[i]));
    write_results();
    fs::remove(partial_path, ec);
  }
  progress.finish();
  write_results();

  write_file_atomic((dir / "results.md").string(), eval::render_markdown(results));
  const auto plots = eval::render_plots(results);
  for (const auto& [name, svg] : plots) write_file_atomic((dir / name).string(), svg);
  fmt::print(stderr, "eval: wrote {}, results.md and {} plots to {}\n", results_path.filename().string(),
             plots.size(), dir.string());

  if (!a.json) {
    fmt::print("{}", eval::render_markdown(results));
    return;
  }
  json out = json::array();
  for (size_t i = 0; i < cells.size(); ++i) {
    json c = cells[i];
    c.erase("config");
    c.erase("resident_fraction_steps");
    c.erase("checksum");
    c["resumed"] = static_cast<bool>(resumed[i]);
    out.push_back(std::move(c));
  }
  fmt::print("{}\n", json{{"cells", out}}.dump());
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
  cmd->add_option("--out", a->out, "output directory (results.json, results.md, *.svg)")->capture_default_str();
  cmd->add_flag("--json", a->json, "print the cells as one JSON object on the last line of stdout");
  cmd->add_flag("--progress", a->progress, "print the progress line even when stderr is not a terminal");
  cmd->callback([a] { run_eval(*a); });
});

}  // namespace
}  // namespace flashmem::cli
