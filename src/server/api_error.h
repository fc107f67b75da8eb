// An OpenAI-style API error: an HTTP status and the body clients parse,
//   {"error": {"message": ..., "type": ..., "param": ..., "code": ...}}
// (param and code are null when empty). Request parsing, admission and the routes throw it; the
// routes turn it into the response.
#pragma once
#include <string>

#include <nlohmann/json.hpp>

#include "util/error.h"

namespace flashmem::server {

class ApiError : public Error {
 public:
  ApiError(int status, std::string type, const std::string& message, std::string param = "",
           std::string code = "");
  int status() const { return status_; }
  const std::string& type() const { return type_; }
  const std::string& param() const { return param_; }
  const std::string& code() const { return code_; }
  nlohmann::json to_json() const;

 private:
  int status_;
  std::string type_, param_, code_;
};

// 400 invalid_request_error about field `param` (empty: the request as a whole).
template <typename... Args>
[[noreturn]] void fail_request(const std::string& param, fmt::format_string<Args...> format,
                               Args&&... args) {
  throw ApiError(400, "invalid_request_error", fmt::format(format, std::forward<Args>(args)...),
                 param);
}

}  // namespace flashmem::server
