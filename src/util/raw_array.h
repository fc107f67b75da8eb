// Headerless little-endian arrays (.i32, .f32, .u8) as DESIGN.md specifies.
#pragma once
#include <cstdint>
#include <span>
#include <string>
#include <vector>

namespace flashmem {

// Reads a whole file as elements of T. Throws Error if the size is not a multiple of sizeof(T)
// or the file holds more than max_elements.
std::vector<int32_t> read_i32_file(const std::string& path, size_t max_elements = size_t{1} << 28);
std::vector<float> read_f32_file(const std::string& path, size_t max_elements = size_t{1} << 32);
std::vector<uint8_t> read_u8_file(const std::string& path, size_t max_elements = size_t{1} << 34);

// Writes atomically.
void write_f32_file(const std::string& path, std::span<const float> values);
void write_i32_file(const std::string& path, std::span<const int32_t> values);

}  // namespace flashmem
