// Read-only safetensors files (the reference checkpoint format): 8-byte little-endian header
// length N, N bytes of JSON {name: {dtype, shape, data_offsets: [begin, end]}, "__metadata__":
// {...}}, then the data; offsets are relative to the first byte after the header.
// Every length, shape and offset is validated against the file before use (Error otherwise).
#pragma once
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "util/mapped_file.h"

namespace flashmem {

struct SafetensorsTensor {
  std::string name;
  std::string dtype;             // "F32", "BF16", "F16", ... as written in the file
  std::vector<int64_t> shape;    // row-major, outermost first (torch order)
  const uint8_t* data = nullptr; // points into the mapping / caller's buffer
  uint64_t n_bytes = 0;

  int64_t n_elements() const;
};

class SafetensorsFile {
 public:
  static SafetensorsFile open(const std::string& path);
  // Over a caller-owned buffer that must outlive the object (tests, fuzzing).
  static SafetensorsFile parse(const uint8_t* data, size_t size, std::string name = "<memory>");

  const std::string& name() const { return name_; }
  const std::vector<SafetensorsTensor>& tensors() const { return tensors_; }  // sorted by name
  const SafetensorsTensor* find(std::string_view name) const;

 private:
  SafetensorsFile() = default;
  void parse_all(const uint8_t* data, size_t size);

  std::shared_ptr<MappedFile> map_;
  std::string name_;
  std::vector<SafetensorsTensor> tensors_;
};

// Bytes per element of a safetensors dtype name; 0 if unknown.
int safetensors_dtype_size(std::string_view dtype);

}  // namespace flashmem
