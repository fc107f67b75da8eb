// The evaluation grid's results as data and documents: every cell as a JSON object (the
// results.json schema, docs/EVAL.md), the key that decides whether a stored cell can be reused,
// and the report rendered from those objects (results.md and the SVG plots). The report reads
// only the JSON cells, so a resumed run renders stored and fresh cells the same way.
#pragma once
#include <string>
#include <utility>
#include <vector>

#include <nlohmann/json.hpp>

#include "eval/eval_grid.h"

namespace flashmem::eval {

// What identifies the run's inputs beyond the grid (stored with every cell's config).
struct RunIdentity {
  std::string model_name;     // file name
  std::string model_sha256;   // sha256 of the GGUF header (metadata + tensor table), as dumps
  std::string indexer_name;   // empty without an indexer
  std::string indexer_sha256; // sha256 of the whole indexer file
  std::string kv_type = "f16";
};

// Everything that changes a cell's numbers: model, indexer (lsa only), KV type, family, length,
// policy, budget, runtime spec, page geometry, samples, seed, task options. Two cells with equal
// configs are the same measurement.
nlohmann::json cell_config(const CellPlan& plan, const GridOptions& o, const RunIdentity& id);

// One results.json cell: the fields of docs/EVAL.md plus "config" (= cell_config). Budget is
// null for full and window.
nlohmann::json cell_to_json(const CellResult& c, const nlohmann::json& config);

// One sample's measurements as JSON and back (DIR/partial.json: the samples of the cell in
// progress, so an interrupted run resumes mid-cell). sample_from_json throws
// nlohmann::json::exception on a missing or mistyped field.
nlohmann::json sample_to_json(const SampleResult& r);
SampleResult sample_from_json(const nlohmann::json& j);

// The cell of `stored` (a results.json "cells" array) with this config, or nullptr.
const nlohmann::json* find_cell(const nlohmann::json& stored, const nlohmann::json& config);

// results.md: header (model, geometry, metric), an accuracy table (rows family × length,
// columns policy@budget, then the measured resident fraction of window) and a resident-fraction
// table of the same shape. `results` is a results.json object.
std::string render_markdown(const nlohmann::json& results);

// SVG plots as (file name, document): accuracy_<family>.svg (accuracy against budget, mean over
// lengths; one line per budgeted policy, full as a dashed reference level, window as a point at
// its measured resident fraction), accuracy_<family>_<length>.svg when there are several
// lengths, and resident_steps.svg (resident fraction per decode step of sample 0, one line per
// policy, first family and length, budget nearest 0.10).
std::vector<std::pair<std::string, std::string>> render_plots(const nlohmann::json& results);

}  // namespace flashmem::eval
