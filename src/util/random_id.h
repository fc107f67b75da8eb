// Unpredictable short names (a Redis sequence id, a persisted entry's generation).
#pragma once
#include <string>

namespace flashmem {

// 64 bits from std::random_device as 16 lowercase hex digits.
std::string random_hex64();

}  // namespace flashmem
