// Reading back what `flashmem eval` wrote (DIR/results.json, DIR/partial.json), trusting only what
// verifies. Every cell of results.json carries "checksum" = "xxh3:" + XXH3-64 (hex) of the cell's
// canonical JSON without that field (nlohmann's dump(): sorted keys, shortest round-trip
// numbers); partial.json carries one over {"config", "samples"}. A hand-edited digit, a cell
// without a checksum (hand-made, or written before checksums) or a damaged file is never reused:
// the cell is recomputed, and the command says so on stderr.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "eval/eval_grid.h"

namespace flashmem::eval {

// `object` with its "checksum" field set (any earlier one replaced).
nlohmann::json seal(nlohmann::json object);
// True when `object` is a JSON object whose "checksum" matches the rest of it.
bool is_sealed(const nlohmann::json& object);

// results.json text: the parsed object; Error (naming `name`) when it is not JSON, not an object,
// or has no "cells" array.
nlohmann::json parse_results(const std::string& text, const std::string& name);
// The file at `path`, or an empty object when there is none.
nlohmann::json read_results(const std::string& path);

// The stored cells of an earlier results.json ("cells", then "other_cells"), split by trust.
struct StoredCells {
  nlohmann::json verified = nlohmann::json::array();    // reusable
  nlohmann::json unverified = nlohmann::json::array();  // checksum missing or wrong: never reused
};
StoredCells stored_cells(const nlohmann::json& results);

// partial.json: the samples of the cell in progress, sealed.
nlohmann::json partial_to_json(const nlohmann::json& config, const nlohmann::json& samples);
// Its samples when it is sealed and its config is `config`; else none, and `why` (when not null)
// says why the samples are not used ("" when the file belongs to another cell).
std::vector<SampleResult> partial_samples(const nlohmann::json& partial, const nlohmann::json& config,
                                          std::string* why = nullptr);

}  // namespace flashmem::eval
