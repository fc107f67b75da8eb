// SHA-256 (FIPS 180-4), for identifying the backbone a dump was made from (DESIGN.md "Dumps":
// sha256 of the model file's header). Not used for anything security-relevant.
#pragma once
#include <array>
#include <cstddef>
#include <cstdint>
#include <string>

namespace flashmem {

std::array<uint8_t, 32> sha256(const void* data, size_t size);
// Lower-case hex of sha256(data).
std::string sha256_hex(const void* data, size_t size);

}  // namespace flashmem
