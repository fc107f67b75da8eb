#include "eval/grid_dir.h"

#include <fmt/format.h>

#include <algorithm>

#include "eval/results_file.h"
#include "eval/task_run.h"
#include "model/model.h"
#include "runtime/limits.h"
#include "tokenizer/tokenizer.h"
#include "util/atomic_file.h"
#include "util/error.h"
#include "util/mapped_file.h"
#include "util/read_file.h"
#include "util/sha256.h"
#include "util/timer.h"

namespace flashmem::eval {
namespace {

namespace fs = std::filesystem;
using nlohmann::json;

json load_partial(const fs::path& path) {
  if (!fs::exists(path)) return nullptr;
  try {
    return json::parse(read_file(path.string()), nullptr, /*allow_exceptions=*/false);
  } catch (const Error&) {
    return nullptr;  // unreadable: only a cache, like one that does not parse
  }
}

}  // namespace

void check_grid_fits(const ModelConfig& config, const Tokenizer& tokenizer, const GridOptions& o, DType kv_type) {
  for (const data::TaskFamily f : o.families)
    for (const int64_t l : o.lengths) {
      data::TaskSpec spec;
      spec.family = f;
      spec.length = l;
      spec.value = o.value;
      spec.filler = o.filler;
      try {
        const data::TaskSample sample = data::generate_task(spec, o.seed, tokenizer);
        // A cell's context (eval_grid.cpp): the prompt and the answer budget. No explicit
        // context, so the plan never warns: a length beyond the trained context is an Error.
        plan_context(config, {.prompt_tokens = std::max(l, static_cast<int64_t>(sample.tokens.size())),
                              .max_new_tokens = answer_token_budget(sample, tokenizer, o.extra_tokens),
                              .n_ctx = std::nullopt,
                              .kv_type = kv_type,
                              .kv_in_ram = true});
      } catch (const Error& e) {
        fail("--lengths: {}", e.what());
      }
    }
}

RunIdentity run_identity(const Model& model, const std::string& model_path, const std::string& indexer_path,
                         const std::string& kv_type) {
  RunIdentity id;
  id.model_name = fs::path(model_path).filename().string();
  id.model_sha256 = sha256_hex(model.file().file_data(), static_cast<size_t>(model.file().data_offset()));
  id.kv_type = kv_type;
  if (!indexer_path.empty()) {
    const MappedFile file(indexer_path);
    id.indexer_name = fs::path(indexer_path).filename().string();
    id.indexer_sha256 = sha256_hex(file.data(), file.size());
  }
  return id;
}

GridDir open_grid_dir(const std::string& dir) {
  std::error_code ec;
  fs::create_directories(dir, ec);
  if (ec || !fs::is_directory(dir)) fail("cannot create --out directory '{}': {}", dir, ec.message());
  // One writer of DIR at a time: two grids into one results.json would each rewrite it from
  // what they read at their start, and one would lose the other's cells.
  DirLock lock = DirLock::lock_directory(dir);
  json previous = read_results((fs::path(dir) / "results.json").string());
  return GridDir{fs::path(dir), std::move(lock), std::move(previous)};
}

GridRun run_grid_in_dir(GridDir& d, const GridOptions& o, const GridRuntime& rt, const RunIdentity& id,
                        const GridRecord& record) {
  auto note = [&](const std::string& line) {
    if (record.note) record.note(line);
  };
  const fs::path results_path = d.dir / "results.json";
  GridRun run;
  run.results = {{"version", 1},
                 {"command", record.command},
                 {"model", {{"name", id.model_name}, {"path", record.model_path}, {"sha256", id.model_sha256}}},
                 {"indexer", record.indexer_path.empty()
                                 ? json(nullptr)
                                 : json{{"name", id.indexer_name}, {"path", record.indexer_path},
                                        {"sha256", id.indexer_sha256}}},
                 {"cells", json::array()}};
  const std::vector<CellPlan> plan = plan_grid(o);
  std::vector<json> configs(plan.size());
  run.cells.assign(plan.size(), nullptr);
  run.resumed.assign(plan.size(), false);
  const fs::path partial_path = d.dir / "partial.json";
  const json partial = load_partial(partial_path);
  int64_t reused = 0, samples_to_run = 0;
  // Stored cells: the earlier grid's "cells" plus the "other_cells" kept from grids before it;
  // only those whose checksum verifies are reused.
  const StoredCells stored = stored_cells(d.previous);
  for (size_t i = 0; i < plan.size(); ++i) {
    configs[i] = cell_config(plan[i], o, id);
    if (const json* c = find_cell(stored.verified, configs[i])) {
      run.cells[i] = *c;
      run.resumed[i] = true;
      ++reused;
      continue;
    }
    if (find_cell(stored.unverified, configs[i]) != nullptr)
      note(fmt::format("{}@{} {}: the stored cell in {} has no valid checksum (edited or damaged): "
                       "recomputing it", data::family_name(plan[i].family), plan[i].length, plan[i].spec,
                       results_path.string()));
    samples_to_run += o.samples - static_cast<int64_t>(partial_samples(partial, configs[i]).size());
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
  if (!other_cells.empty()) run.results["other_cells"] = other_cells;
  if (reused > 0)
    note(fmt::format("{} of {} cells already in {} with the same configuration: skipping them", reused,
                     plan.size(), results_path.string()));
  if (!other_cells.empty())
    note(fmt::format("{} cells of {} are not in this grid: kept there under \"other_cells\"", other_cells.size(),
                     results_path.string()));
  const PageSetup pages = page_setup(o);
  note(fmt::format("{} cells, {} samples to run; pages of {} tokens{}, tau {}", plan.size(), samples_to_run,
                   pages.page_tokens, o.page_tokens > 0 ? "" : " (auto)", pages.tau));

  auto write_results = [&] {
    json done = json::array();
    for (const json& c : run.cells)
      if (!c.is_null()) done.push_back(c);
    run.results["cells"] = done;
    write_file_atomic(results_path.string(), run.results.dump(1) + "\n");
  };
  ProgressLine progress("eval", samples_to_run, "samples", record.progress);
  int64_t done_samples = 0;
  for (size_t i = 0; i < plan.size(); ++i) {
    if (run.resumed[i]) continue;
    const CellPlan& p = plan[i];
    const std::string label = fmt::format("{}@{} {}", data::family_name(p.family), p.length, p.spec);
    std::string why;
    std::vector<SampleResult> samples = partial_samples(partial, configs[i], &why);
    if (!why.empty())
      note(fmt::format("{}: the samples in {} are not used ({}): recomputing them", label, partial_path.string(),
                       why));
    json samples_json = json::array();
    for (const SampleResult& r : samples) samples_json.push_back(sample_to_json(r));
    if (!samples.empty())
      note(fmt::format("{}: {} of {} samples already in {}", label, samples.size(), o.samples,
                       partial_path.string()));
    CellRunner runner(p, o, rt);
    for (auto k = static_cast<int64_t>(samples.size()); k < o.samples; ++k) {
      samples.push_back(runner.run(k));
      samples_json.push_back(sample_to_json(samples.back()));
      write_file_atomic(partial_path.string(), partial_to_json(configs[i], samples_json).dump() + "\n");
      progress.update(++done_samples, label);
    }
    run.cells[i] = seal(cell_to_json(summarize_cell(p, samples), configs[i]));
    write_results();
    std::error_code ec;
    fs::remove(partial_path, ec);
  }
  progress.finish();
  write_results();

  write_file_atomic((d.dir / "results.md").string(), render_markdown(run.results));
  const auto plots = render_plots(run.results);
  for (const auto& [name, svg] : plots) write_file_atomic((d.dir / name).string(), svg);
  run.plots = plots.size();
  note(fmt::format("wrote {}, results.md and {} plots to {}", results_path.filename().string(), run.plots,
                   d.dir.string()));
  return run;
}

json grid_cells_summary(const GridRun& run) {
  json out = json::array();
  for (size_t i = 0; i < run.cells.size(); ++i) {
    json c = run.cells[i];
    c.erase("config");
    c.erase("resident_fraction_steps");
    c.erase("checksum");
    c["resumed"] = static_cast<bool>(run.resumed[i]);
    out.push_back(std::move(c));
  }
  return json{{"cells", out}};
}

}  // namespace flashmem::eval
