// libFuzzer target: reading back `flashmem eval` output (eval/results_file.h): results.json
// parsing, cell and partial.json checksums, the sample reader, and — with every cell re-sealed,
// since the fuzzer cannot forge a checksum — the report renderers (results.md and the SVG plots),
// which a resumed run feeds with stored cells. Type errors in the JSON are rejections
// (nlohmann::json::exception, Error); anything a sanitizer reports is a finding.
#include <cstdint>
#include <string>

#include <nlohmann/json.hpp>

#include "eval/eval_report.h"
#include "eval/results_file.h"
#include "util/error.h"

namespace {

using nlohmann::json;

template <typename F>
void rejected_ok(F&& f) {
  try {
    f();
  } catch (const flashmem::Error&) {
  } catch (const json::exception&) {
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string text(reinterpret_cast<const char*>(data), size);
  json results;
  try {
    results = flashmem::eval::parse_results(text, "fuzz");
  } catch (const flashmem::Error&) {
    // Not a results file; it may still be a partial.json.
    const json partial = json::parse(text, nullptr, false);
    if (!partial.is_discarded() && partial.is_object()) {
      const json config = partial.value("config", json());
      rejected_ok([&] { (void)flashmem::eval::partial_samples(partial, config); });
      rejected_ok([&] { (void)flashmem::eval::partial_samples(flashmem::eval::seal(partial), config); });
    }
    return 0;
  }
  const flashmem::eval::StoredCells stored = flashmem::eval::stored_cells(results);
  for (const json& c : stored.verified)
    if (c.is_object() && c.contains("config")) (void)flashmem::eval::find_cell(stored.verified, c.at("config"));
  rejected_ok([&] { (void)flashmem::eval::render_markdown(results); });
  rejected_ok([&] { (void)flashmem::eval::render_plots(results); });
  json sealed = results;
  for (json& c : sealed["cells"])
    if (c.is_object()) c = flashmem::eval::seal(c);
  rejected_ok([&] { (void)flashmem::eval::render_markdown(sealed); });
  rejected_ok([&] { (void)flashmem::eval::render_plots(sealed); });
  return 0;
}
