// Errors: every failure caused by input (files, flags, requests) is reported by throwing
// flashmem::Error; the CLI prints "error: <message>" and exits non-zero. Never abort on input.
#pragma once
#include <fmt/format.h>
#include <stdexcept>
#include <string>

namespace flashmem {

class Error : public std::runtime_error {
 public:
  explicit Error(const std::string& message) : std::runtime_error(message) {}
};

template <typename... Args>
[[noreturn]] void fail(fmt::format_string<Args...> format, Args&&... args) {
  throw Error(fmt::format(format, std::forward<Args>(args)...));
}

}  // namespace flashmem
