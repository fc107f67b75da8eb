// `flashmem eval`'s run of a grid into an output directory (docs/EVAL.md), resumable: cells
// already in DIR/results.json with the same configuration and a checksum that verifies are reused
// (any other is recomputed, with a note: results_file.h); results.json is rewritten (atomically)
// after every finished cell; DIR/partial.json holds the samples of the cell in progress, so an
// interrupted run loses at most the sample it was running. DIR is locked for the run
// (util/dir_lock.h): a second run into it stops with an error instead of losing cells.
#pragma once
#include <filesystem>
#include <functional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "eval/eval_grid.h"
#include "eval/eval_report.h"
#include "tensor/dtype.h"
#include "util/dir_lock.h"

namespace flashmem {
struct ModelConfig;
}

namespace flashmem::eval {

// Every (family, length) of the grid fits its task's fixed text and, with the answer budget,
// the model's trained context (eval has no -c). Throws Error prefixed "--lengths: ".
void check_grid_fits(const ModelConfig& config, const Tokenizer& tokenizer, const GridOptions& o, DType kv_type);

// The run's identity: the model's file name and header hash, the indexer's file name and hash
// (when `indexer_path` is not empty).
RunIdentity run_identity(const Model& model, const std::string& model_path, const std::string& indexer_path,
                         const std::string& kv_type);

// DIR opened for one run: created if missing, locked until this is destroyed, and the
// results.json an earlier run left there ({} when none).
struct GridDir {
  std::filesystem::path dir;
  DirLock lock;
  nlohmann::json previous;
};
// Throws Error when DIR cannot be created, is locked by another process or holds a results.json
// that is not one.
GridDir open_grid_dir(const std::string& dir);

// What the run records about itself in results.json, and how it reports.
struct GridRecord {
  std::string command;       // the command line
  std::string model_path;    // as given
  std::string indexer_path;  // as given; "" = none
  bool progress = false;     // progress line even when stderr is not a terminal
  std::function<void(const std::string&)> note;  // one line per resume decision (may be empty)
};

struct GridRun {
  nlohmann::json results;             // the object written to DIR/results.json
  std::vector<nlohmann::json> cells;  // [plan cells] sealed results.json cells, in plan order
  std::vector<bool> resumed;          // [plan cells] reused from the earlier results.json
  size_t plots = 0;                   // SVG files written
};

// Runs every cell of plan_grid(o) not already stored, then writes results.json, results.md and
// the plots into `dir`.
GridRun run_grid_in_dir(GridDir& dir, const GridOptions& o, const GridRuntime& rt, const RunIdentity& id,
                        const GridRecord& record);

// `eval --json`'s object: {"cells": [...]}, each cell without "config", "resident_fraction_steps"
// and "checksum", with "resumed".
nlohmann::json grid_cells_summary(const GridRun& run);

}  // namespace flashmem::eval
