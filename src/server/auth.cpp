#include "server/auth.h"

#include <cstdint>

namespace flashmem::server {

bool bearer_matches(std::string_view authorization, std::string_view key) {
  constexpr std::string_view kScheme = "Bearer ";
  if (authorization.substr(0, kScheme.size()) != kScheme) return false;
  const std::string_view given = authorization.substr(kScheme.size());
  // Every byte of the key is compared, whatever the given length.
  uint8_t diff = given.size() == key.size() ? 0 : 1;
  for (size_t i = 0; i < key.size(); ++i) {
    const char g = i < given.size() ? given[i] : '\0';
    diff |= static_cast<uint8_t>(g ^ key[i]);
  }
  return diff == 0;
}

}  // namespace flashmem::server
