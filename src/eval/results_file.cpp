#include "eval/results_file.h"

#include <xxhash.h>

#include <filesystem>

#include "eval/eval_report.h"
#include "util/error.h"
#include "util/read_file.h"

namespace flashmem::eval {
namespace {

using nlohmann::json;

constexpr const char* kChecksum = "checksum";

std::string digest_of(const json& object) {
  json copy = object;
  copy.erase(kChecksum);
  const std::string text = copy.dump();
  return fmt::format("xxh3:{:016x}", XXH3_64bits(text.data(), text.size()));
}

}  // namespace

json seal(json object) {
  if (!object.is_object()) fail("internal: only a JSON object can carry a checksum");
  object[kChecksum] = digest_of(object);
  return object;
}

bool is_sealed(const json& object) {
  if (!object.is_object()) return false;
  const auto it = object.find(kChecksum);
  if (it == object.end() || !it->is_string()) return false;
  return it->get_ref<const std::string&>() == digest_of(object);
}

json parse_results(const std::string& text, const std::string& name) {
  json j = json::parse(text, nullptr, /*allow_exceptions=*/false);
  if (j.is_discarded()) fail("{} is not valid JSON; remove it or choose another --out", name);
  if (!j.is_object() || !j.contains("cells") || !j.at("cells").is_array())
    fail("{} has no \"cells\" array; remove it or choose another --out", name);
  return j;
}

json read_results(const std::string& path) {
  std::error_code ec;
  if (!std::filesystem::exists(path, ec)) return json::object();
  return parse_results(read_file(path, "results file"), path);
}

StoredCells stored_cells(const json& results) {
  StoredCells out;
  if (!results.is_object()) return out;
  for (const char* key : {"cells", "other_cells"}) {
    const auto it = results.find(key);
    if (it == results.end() || !it->is_array()) continue;
    for (const json& c : *it) (is_sealed(c) ? out.verified : out.unverified).push_back(c);
  }
  return out;
}

json partial_to_json(const json& config, const json& samples) {
  return seal(json{{"config", config}, {"samples", samples}});
}

std::vector<SampleResult> partial_samples(const json& partial, const json& config, std::string* why) {
  std::vector<SampleResult> samples;
  if (why != nullptr) why->clear();
  if (!partial.is_object() || !partial.contains("config") || partial.at("config") != config) return samples;
  if (!is_sealed(partial)) {
    if (why != nullptr) *why = "its checksum is missing or does not match";
    return samples;
  }
  try {
    const json& list = partial.at("samples");
    if (!list.is_array()) throw std::invalid_argument("samples is not an array");
    for (const json& s : list) samples.push_back(sample_from_json(s));
  } catch (const std::exception& e) {
    samples.clear();
    if (why != nullptr) *why = fmt::format("a sample does not read back ({})", e.what());
  }
  return samples;
}

}  // namespace flashmem::eval
