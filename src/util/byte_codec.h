// Little-endian binary records built and parsed field by field (persisted sequence records,
// policy state). The reader checks every length against the bytes left, so a truncated or
// damaged record is an Error naming what was being read, never an out-of-bounds read.
#pragma once
#include <cstdint>
#include <cstring>
#include <span>
#include <string>
#include <string_view>
#include <type_traits>
#include <vector>

namespace flashmem {

class ByteWriter {
 public:
  template <typename T>
  void put(T value) {
    static_assert(std::is_trivially_copyable_v<T>);
    append(&value, sizeof(T));
  }
  // A length (u64) followed by the elements.
  template <typename T>
  void put_array(std::span<const T> values) {
    static_assert(std::is_trivially_copyable_v<T>);
    put<uint64_t>(values.size());
    append(values.data(), values.size_bytes());
  }
  void put_string(std::string_view s) { put_array(std::span<const char>(s.data(), s.size())); }
  const std::string& bytes() const { return bytes_; }
  std::string take() { return std::move(bytes_); }

 private:
  void append(const void* data, size_t n) { bytes_.append(static_cast<const char*>(data), n); }
  std::string bytes_;
};

class ByteReader {
 public:
  // `what` names the record in errors ("sequence record 'abc'").
  ByteReader(std::string_view bytes, std::string what) : bytes_(bytes), what_(std::move(what)) {}

  template <typename T>
  T get(const char* field) {
    static_assert(std::is_trivially_copyable_v<T>);
    T value;
    std::memcpy(&value, take(sizeof(T), field), sizeof(T));
    return value;
  }
  // An array written by put_array; more than max_elements is an Error (a damaged length).
  template <typename T>
  std::vector<T> get_array(const char* field, uint64_t max_elements) {
    static_assert(std::is_trivially_copyable_v<T>);
    const auto n = get<uint64_t>(field);
    check_count(n, max_elements, sizeof(T), field);
    std::vector<T> values(static_cast<size_t>(n));
    if (n > 0) std::memcpy(values.data(), take(values.size() * sizeof(T), field), values.size() * sizeof(T));
    return values;
  }
  std::string get_string(const char* field, uint64_t max_bytes) {
    const std::vector<char> chars = get_array<char>(field, max_bytes);
    return std::string(chars.begin(), chars.end());
  }
  size_t remaining() const { return bytes_.size() - offset_; }
  // Error unless every byte was read.
  void expect_end() const;

 private:
  const char* take(size_t n, const char* field);
  void check_count(uint64_t n, uint64_t max_elements, size_t element_bytes, const char* field) const;

  std::string_view bytes_;
  size_t offset_ = 0;
  std::string what_;
};

}  // namespace flashmem
