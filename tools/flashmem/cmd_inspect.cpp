// `flashmem inspect FILE.gguf [--json]`: version, alignment, every metadata key with its type and
// value, the tensor table and totals. Arrays show their type, count and first few elements.
#include <fmt/format.h>

#include <cstring>
#include <nlohmann/json.hpp>

#include "commands.h"
#include "gguf/gguf.h"

namespace flashmem::cli {
namespace {

// Arrays print this many leading elements: enough to recognise a vocabulary or a layer list
// while keeping one line per key.
constexpr size_t kArrayPreview = 8;
// Longer strings are cut (with their length shown): chat templates run to kilobytes.
constexpr size_t kStringPreview = 120;

std::string quote(std::string_view s) {
  std::string out = "\"";
  const size_t n = std::min(s.size(), kStringPreview);
  for (size_t k = 0; k < n; ++k) {
    const auto c = static_cast<unsigned char>(s[k]);
    if (c == '"' || c == '\\') {
      out += '\\';
      out += static_cast<char>(c);
    } else if (c == '\n') {
      out += "\\n";
    } else if (c < 0x20 || c == 0x7f) {
      out += fmt::format("\\x{:02x}", c);
    } else {
      out += static_cast<char>(c);  // UTF-8 passes through
    }
  }
  out += '"';
  if (s.size() > n) out += fmt::format("... ({} bytes)", s.size());
  return out;
}

template <typename T>
T load(const GgufValue& v, size_t k) {
  T x;
  std::memcpy(&x, v.raw.data() + k * sizeof(T), sizeof(T));
  return x;
}

// Element k of a numeric array as text.
std::string element_text(const GgufValue& v, size_t k) {
  switch (v.elem_type) {
    case GgufType::U8: return fmt::format("{}", load<uint8_t>(v, k));
    case GgufType::I8: return fmt::format("{}", load<int8_t>(v, k));
    case GgufType::U16: return fmt::format("{}", load<uint16_t>(v, k));
    case GgufType::I16: return fmt::format("{}", load<int16_t>(v, k));
    case GgufType::U32: return fmt::format("{}", load<uint32_t>(v, k));
    case GgufType::I32: return fmt::format("{}", load<int32_t>(v, k));
    case GgufType::U64: return fmt::format("{}", load<uint64_t>(v, k));
    case GgufType::I64: return fmt::format("{}", load<int64_t>(v, k));
    case GgufType::F32: return fmt::format("{}", load<float>(v, k));
    case GgufType::F64: return fmt::format("{}", load<double>(v, k));
    case GgufType::BOOL: return load<uint8_t>(v, k) ? "true" : "false";
    case GgufType::STRING: return quote(v.strings[k]);
    case GgufType::ARRAY: break;
  }
  return "?";
}

std::string scalar_text(const GgufValue& v) {
  switch (v.type) {
    case GgufType::U8: case GgufType::U16: case GgufType::U32: case GgufType::U64:
      return fmt::format("{}", v.u);
    case GgufType::I8: case GgufType::I16: case GgufType::I32: case GgufType::I64:
      return fmt::format("{}", v.i);
    case GgufType::F32: return fmt::format("{}", static_cast<float>(v.f));
    case GgufType::F64: return fmt::format("{}", v.f);
    case GgufType::BOOL: return v.u ? "true" : "false";
    case GgufType::STRING: return quote(v.str);
    case GgufType::ARRAY: break;
  }
  return "?";
}

std::string type_text(const GgufValue& v) {
  if (!v.is_array()) return std::string(gguf_type_name(v.type));
  return fmt::format("[{} × {}]", v.array_size, gguf_type_name(v.elem_type));
}

std::string value_text(const GgufValue& v) {
  if (!v.is_array()) return scalar_text(v);
  std::string out;
  const size_t n = static_cast<size_t>(std::min<uint64_t>(v.array_size, kArrayPreview));
  for (size_t k = 0; k < n; ++k) out += (k ? ", " : "") + element_text(v, k);
  if (v.array_size > n) out += ", ...";
  return out;
}

std::string shape_text(const GgufTensor& t) {
  std::string out = "[";
  for (int d = 0; d < t.n_dims; ++d) out += fmt::format("{}{}", d ? ", " : "", t.ne[d]);
  return out + "]";
}

nlohmann::json element_json(const GgufValue& v, size_t k) {
  switch (v.elem_type) {
    case GgufType::U8: return load<uint8_t>(v, k);
    case GgufType::I8: return load<int8_t>(v, k);
    case GgufType::U16: return load<uint16_t>(v, k);
    case GgufType::I16: return load<int16_t>(v, k);
    case GgufType::U32: return load<uint32_t>(v, k);
    case GgufType::I32: return load<int32_t>(v, k);
    case GgufType::U64: return load<uint64_t>(v, k);
    case GgufType::I64: return load<int64_t>(v, k);
    case GgufType::F32: return load<float>(v, k);
    case GgufType::F64: return load<double>(v, k);
    case GgufType::BOOL: return load<uint8_t>(v, k) != 0;
    case GgufType::STRING: return v.strings[k];
    case GgufType::ARRAY: break;
  }
  return nullptr;
}

nlohmann::json value_json(const GgufValue& v) {
  nlohmann::json j;
  if (v.is_array()) {
    j["type"] = "array";
    j["elem_type"] = gguf_type_name(v.elem_type);
    j["count"] = v.array_size;
    nlohmann::json head = nlohmann::json::array();
    const size_t n = static_cast<size_t>(std::min<uint64_t>(v.array_size, kArrayPreview));
    for (size_t k = 0; k < n; ++k) head.push_back(element_json(v, k));
    j["head"] = head;
    return j;
  }
  j["type"] = gguf_type_name(v.type);
  switch (v.type) {
    case GgufType::U8: case GgufType::U16: case GgufType::U32: case GgufType::U64:
      j["value"] = v.u;
      break;
    case GgufType::I8: case GgufType::I16: case GgufType::I32: case GgufType::I64:
      j["value"] = v.i;
      break;
    case GgufType::F32: case GgufType::F64: j["value"] = v.f; break;
    case GgufType::BOOL: j["value"] = v.u != 0; break;
    case GgufType::STRING: j["value"] = v.str; break;
    case GgufType::ARRAY: break;
  }
  return j;
}

void print_json(const GgufFile& f) {
  nlohmann::json j;
  j["file"] = f.name();
  j["version"] = f.version();
  j["alignment"] = f.alignment();
  j["data_offset"] = f.data_offset();
  j["file_size"] = f.file_size();
  nlohmann::json metadata = nlohmann::json::array();
  for (const std::string& key : f.keys()) {
    nlohmann::json entry = value_json(*f.find(key));
    entry["key"] = key;
    metadata.push_back(entry);
  }
  j["metadata"] = metadata;
  nlohmann::json tensors = nlohmann::json::array();
  uint64_t params = 0, bytes = 0;
  for (const GgufTensor& t : f.tensors()) {
    tensors.push_back({{"name", t.name},
                       {"type", dtype_info(t.type).name},
                       {"shape", std::vector<int64_t>(t.ne, t.ne + t.n_dims)},
                       {"offset", t.offset},
                       {"bytes", t.n_bytes}});
    params += static_cast<uint64_t>(t.n_elements());
    bytes += t.n_bytes;
  }
  j["tensors"] = tensors;
  j["totals"] = {{"tensors", f.tensors().size()}, {"parameters", params}, {"bytes", bytes}};
  // Token texts need not be valid UTF-8: replace bad sequences instead of throwing.
  fmt::print("{}\n", j.dump(2, ' ', false, nlohmann::json::error_handler_t::replace));
}

void print_text(const GgufFile& f) {
  fmt::print("file: {}\nversion: {}\nalignment: {}\ndata offset: {}\nfile size: {}\n", f.name(),
             f.version(), f.alignment(), f.data_offset(), f.file_size());
  size_t key_width = 0, type_width = 0;
  for (const std::string& key : f.keys()) {
    key_width = std::max(key_width, key.size());
    type_width = std::max(type_width, type_text(*f.find(key)).size());
  }
  fmt::print("\nmetadata ({} keys):\n", f.keys().size());
  for (const std::string& key : f.keys()) {
    const GgufValue& v = *f.find(key);
    fmt::print("  {:<{}}  {:<{}}  {}\n", key, key_width, type_text(v), type_width, value_text(v));
  }
  size_t name_width = 4;
  for (const GgufTensor& t : f.tensors()) name_width = std::max(name_width, t.name.size());
  fmt::print("\ntensors ({}):\n", f.tensors().size());
  fmt::print("  {:<{}}  {:<5}  {:<24}  {:>12}  {:>12}\n", "name", name_width, "type",
             "shape (ne)", "offset", "bytes");
  uint64_t params = 0, bytes = 0;
  for (const GgufTensor& t : f.tensors()) {
    fmt::print("  {:<{}}  {:<5}  {:<24}  {:>12}  {:>12}\n", t.name, name_width,
               dtype_info(t.type).name, shape_text(t), t.offset, t.n_bytes);
    params += static_cast<uint64_t>(t.n_elements());
    bytes += t.n_bytes;
  }
  fmt::print("\ntotals: {} tensors, {} parameters, {} bytes\n", f.tensors().size(), params,
             bytes);
}

struct InspectOptions {
  std::string path;
  bool json = false;
};

const CommandRegistration kInspect("inspect", [](CLI::App& app) {
  auto options = std::make_shared<InspectOptions>();
  auto* cmd = app.add_subcommand("inspect", "Print a GGUF file's metadata and tensor table");
  cmd->add_option("file", options->path, "GGUF file")->required();
  cmd->add_flag("--json", options->json, "Print one JSON object instead of text");
  cmd->callback([options] {
    const GgufFile f = GgufFile::open(options->path);
    if (options->json) {
      print_json(f);
    } else {
      print_text(f);
    }
  });
});

}  // namespace
}  // namespace flashmem::cli
