#include "util/raw_array.h"

#include <cstring>

#include "util/atomic_file.h"
#include "util/error.h"
#include "util/mapped_file.h"

namespace flashmem {
namespace {

template <typename T>
std::vector<T> read_raw(const std::string& path, size_t max_elements) {
  MappedFile file(path);
  if (file.size() % sizeof(T) != 0)
    fail("'{}': size {} is not a multiple of {} bytes", path, file.size(), sizeof(T));
  const size_t n = file.size() / sizeof(T);
  if (n > max_elements) fail("'{}': {} elements exceed the limit of {}", path, n, max_elements);
  std::vector<T> out(n);
  if (n > 0) std::memcpy(out.data(), file.data(), file.size());
  return out;
}

}  // namespace

std::vector<int32_t> read_i32_file(const std::string& path, size_t max_elements) {
  return read_raw<int32_t>(path, max_elements);
}
std::vector<float> read_f32_file(const std::string& path, size_t max_elements) {
  return read_raw<float>(path, max_elements);
}
std::vector<uint8_t> read_u8_file(const std::string& path, size_t max_elements) {
  return read_raw<uint8_t>(path, max_elements);
}

void write_f32_file(const std::string& path, std::span<const float> values) {
  write_file_atomic(path, std::string_view(reinterpret_cast<const char*>(values.data()),
                                           values.size_bytes()));
}
void write_i32_file(const std::string& path, std::span<const int32_t> values) {
  write_file_atomic(path, std::string_view(reinterpret_cast<const char*>(values.data()),
                                           values.size_bytes()));
}

}  // namespace flashmem
