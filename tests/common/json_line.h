// The JSON object a CLI command prints on its last line (`--json`), parsed.
#pragma once
#include <string>

#include <nlohmann/json.hpp>

namespace flashmem::test {

// The last non-empty line of `out` as JSON (nlohmann's parse error when it is not).
inline nlohmann::json last_json_line(const std::string& out) {
  const size_t end = out.find_last_not_of('\n');
  if (end == std::string::npos) return nlohmann::json::parse("");
  const size_t nl = out.rfind('\n', end);
  const size_t start = nl == std::string::npos ? 0 : nl + 1;
  return nlohmann::json::parse(out.substr(start, end + 1 - start));
}

}  // namespace flashmem::test
