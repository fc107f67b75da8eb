#include "util/random_id.h"

#include <cstdint>
#include <cstdio>
#include <random>

namespace flashmem {

std::string random_hex64() {
  std::random_device device;
  const uint64_t id = (static_cast<uint64_t>(device()) << 32) | device();
  char text[17];
  std::snprintf(text, sizeof(text), "%016llx", static_cast<unsigned long long>(id));
  return text;
}

}  // namespace flashmem
