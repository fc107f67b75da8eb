#include "server/json_fields.h"

#include <cmath>

#include "server/api_error.h"

namespace flashmem::server {

const nlohmann::json* find_field(const nlohmann::json& object, const char* name) {
  const auto it = object.find(name);
  if (it == object.end() || it->is_null()) return nullptr;
  return &*it;
}

std::optional<bool> bool_field(const nlohmann::json& object, const char* name) {
  const nlohmann::json* f = find_field(object, name);
  if (f == nullptr) return std::nullopt;
  if (!f->is_boolean()) fail_request(name, "'{}' must be a boolean", name);
  return f->get<bool>();
}

std::optional<double> number_field(const nlohmann::json& object, const char* name) {
  const nlohmann::json* f = find_field(object, name);
  if (f == nullptr) return std::nullopt;
  if (!f->is_number()) fail_request(name, "'{}' must be a number", name);
  const double value = f->get<double>();
  if (!std::isfinite(value)) fail_request(name, "'{}' must be finite", name);
  return value;
}

std::optional<int64_t> integer_field(const nlohmann::json& object, const char* name) {
  const nlohmann::json* f = find_field(object, name);
  if (f == nullptr) return std::nullopt;
  if (f->is_number_unsigned()) {
    if (f->get<uint64_t>() > static_cast<uint64_t>(INT64_MAX))
      fail_request(name, "'{}' is too large", name);
    return static_cast<int64_t>(f->get<uint64_t>());
  }
  if (!f->is_number_integer()) fail_request(name, "'{}' must be an integer", name);
  return f->get<int64_t>();
}

std::optional<std::string> string_field(const nlohmann::json& object, const char* name) {
  const nlohmann::json* f = find_field(object, name);
  if (f == nullptr) return std::nullopt;
  if (!f->is_string()) fail_request(name, "'{}' must be a string", name);
  return f->get<std::string>();
}

}  // namespace flashmem::server
