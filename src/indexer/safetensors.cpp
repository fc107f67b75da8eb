#include "indexer/safetensors.h"

#include <nlohmann/json.hpp>

#include <algorithm>
#include <cstring>

#include "util/error.h"

namespace flashmem {
namespace {

// The safetensors specification caps the header at 100 MB; anything larger is not a checkpoint.
constexpr uint64_t kMaxHeaderBytes = 100'000'000;
constexpr size_t kLengthBytes = 8;
constexpr size_t kMaxDims = 8;

uint64_t read_u64_le(const uint8_t* p) {
  uint64_t v = 0;
  for (int i = 0; i < 8; ++i) v |= static_cast<uint64_t>(p[i]) << (8 * i);
  return v;
}

// A non-negative JSON integer, or Error naming `what`.
uint64_t json_uint(const nlohmann::json& v, const std::string& file, const std::string& what) {
  if (v.is_number_unsigned()) return v.get<uint64_t>();
  if (v.is_number_integer() && v.get<int64_t>() >= 0) return static_cast<uint64_t>(v.get<int64_t>());
  fail("'{}': {} must be a non-negative integer", file, what);
}

}  // namespace

int safetensors_dtype_size(std::string_view dtype) {
  if (dtype == "F64" || dtype == "I64" || dtype == "U64") return 8;
  if (dtype == "F32" || dtype == "I32" || dtype == "U32") return 4;
  if (dtype == "F16" || dtype == "BF16" || dtype == "I16" || dtype == "U16") return 2;
  if (dtype == "I8" || dtype == "U8" || dtype == "BOOL" || dtype == "F8_E4M3" || dtype == "F8_E5M2")
    return 1;
  return 0;
}

int64_t SafetensorsTensor::n_elements() const {
  int64_t n = 1;
  for (int64_t d : shape) n *= d;
  return n;
}

SafetensorsFile SafetensorsFile::open(const std::string& path) {
  SafetensorsFile f;
  f.map_ = std::make_shared<MappedFile>(path);
  f.name_ = path;
  f.parse_all(f.map_->data(), f.map_->size());
  return f;
}

SafetensorsFile SafetensorsFile::parse(const uint8_t* data, size_t size, std::string name) {
  SafetensorsFile f;
  f.name_ = std::move(name);
  f.parse_all(data, size);
  return f;
}

void SafetensorsFile::parse_all(const uint8_t* data, size_t size) {
  if (size < kLengthBytes) fail("'{}': {} bytes is too short for a safetensors file", name_, size);
  const uint64_t header_len = read_u64_le(data);
  if (header_len > kMaxHeaderBytes || header_len > size - kLengthBytes)
    fail("'{}': header length {} exceeds the file ({} bytes)", name_, header_len, size);
  const uint8_t* header = data + kLengthBytes;
  const uint8_t* payload = header + header_len;
  const uint64_t payload_size = size - kLengthBytes - header_len;

  nlohmann::json json;
  try {
    json = nlohmann::json::parse(header, header + header_len);
  } catch (const nlohmann::json::exception& e) {
    fail("'{}': header is not valid JSON ({})", name_, e.what());
  }
  if (!json.is_object()) fail("'{}': header is not a JSON object", name_);

  for (const auto& [tensor_name, entry] : json.items()) {
    if (tensor_name == "__metadata__") continue;
    const std::string where = fmt::format("tensor '{}'", tensor_name);
    if (!entry.is_object()) fail("'{}': {} is not an object", name_, where);
    SafetensorsTensor t;
    t.name = tensor_name;
    const auto dtype = entry.find("dtype");
    if (dtype == entry.end() || !dtype->is_string()) fail("'{}': {} has no dtype", name_, where);
    t.dtype = dtype->get<std::string>();
    const int elem_size = safetensors_dtype_size(t.dtype);
    if (elem_size == 0) fail("'{}': {} has unknown dtype '{}'", name_, where, t.dtype);

    const auto shape = entry.find("shape");
    if (shape == entry.end() || !shape->is_array() || shape->size() > kMaxDims)
      fail("'{}': {} has no valid shape", name_, where);
    uint64_t n_elements = 1;
    for (const auto& d : *shape) {
      const uint64_t dim = json_uint(d, name_, where + " shape");
      // Bound by the payload so the product cannot overflow (a zero dim ends the product at 0).
      if (dim > payload_size + 1 || (dim != 0 && n_elements > (payload_size + 1) / dim))
        fail("'{}': {} shape exceeds the file", name_, where);
      n_elements *= dim;
      t.shape.push_back(static_cast<int64_t>(dim));
    }

    const auto offsets = entry.find("data_offsets");
    if (offsets == entry.end() || !offsets->is_array() || offsets->size() != 2)
      fail("'{}': {} has no data_offsets pair", name_, where);
    const uint64_t begin = json_uint((*offsets)[0], name_, where + " data_offsets");
    const uint64_t end = json_uint((*offsets)[1], name_, where + " data_offsets");
    if (begin > end || end > payload_size)
      fail("'{}': {} data_offsets [{}, {}] outside the {} data bytes", name_, where, begin, end,
           payload_size);
    if (end - begin != n_elements * static_cast<uint64_t>(elem_size))
      fail("'{}': {} holds {} bytes, its shape and dtype need {}", name_, where, end - begin,
           n_elements * elem_size);
    t.data = payload + begin;
    t.n_bytes = end - begin;
    tensors_.push_back(std::move(t));
  }

  // Tensors must not overlap (the format forbids it; overlapping data means a corrupt header).
  std::vector<const SafetensorsTensor*> by_offset;
  for (const auto& t : tensors_) by_offset.push_back(&t);
  std::sort(by_offset.begin(), by_offset.end(), [](auto* a, auto* b) { return a->data < b->data; });
  for (size_t i = 1; i < by_offset.size(); ++i)
    if (by_offset[i - 1]->data + by_offset[i - 1]->n_bytes > by_offset[i]->data)
      fail("'{}': tensors '{}' and '{}' overlap", name_, by_offset[i - 1]->name, by_offset[i]->name);
  std::sort(tensors_.begin(), tensors_.end(), [](const auto& a, const auto& b) { return a.name < b.name; });
}

const SafetensorsTensor* SafetensorsFile::find(std::string_view name) const {
  auto it = std::lower_bound(tensors_.begin(), tensors_.end(), name,
                             [](const SafetensorsTensor& t, std::string_view n) { return t.name < n; });
  return it != tensors_.end() && it->name == name ? &*it : nullptr;
}

}  // namespace flashmem
