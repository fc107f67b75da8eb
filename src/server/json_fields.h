// Typed reads of a request's JSON fields. A field that is absent or null is "not given" (OpenAI
// clients send null for unset options); a field of the wrong type is a 400 ApiError naming it.
#pragma once
#include <cstdint>
#include <optional>
#include <string>

#include <nlohmann/json.hpp>

namespace flashmem::server {

// The field, or nullptr when `object` lacks it or it is null.
const nlohmann::json* find_field(const nlohmann::json& object, const char* name);

std::optional<bool> bool_field(const nlohmann::json& object, const char* name);
// A finite number (integers included).
std::optional<double> number_field(const nlohmann::json& object, const char* name);
// An integer (a JSON number without fraction or exponent that fits int64).
std::optional<int64_t> integer_field(const nlohmann::json& object, const char* name);
std::optional<std::string> string_field(const nlohmann::json& object, const char* name);

}  // namespace flashmem::server
