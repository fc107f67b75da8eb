// GGUF value types and the typed metadata / tensor getters of GgufFile.
#include <cstring>
#include <limits>

#include "gguf/gguf.h"
#include "gguf/gguf_internal.h"
#include "util/error.h"

namespace flashmem {

std::string_view gguf_type_name(GgufType type) {
  switch (type) {
    case GgufType::U8: return "u8";
    case GgufType::I8: return "i8";
    case GgufType::U16: return "u16";
    case GgufType::I16: return "i16";
    case GgufType::U32: return "u32";
    case GgufType::I32: return "i32";
    case GgufType::F32: return "f32";
    case GgufType::BOOL: return "bool";
    case GgufType::STRING: return "string";
    case GgufType::ARRAY: return "array";
    case GgufType::U64: return "u64";
    case GgufType::I64: return "i64";
    case GgufType::F64: return "f64";
  }
  return "unknown";
}

uint64_t gguf_value_min_bytes(GgufType type) {
  switch (type) {
    case GgufType::U8: case GgufType::I8: case GgufType::BOOL: return 1;
    case GgufType::U16: case GgufType::I16: return 2;
    case GgufType::U32: case GgufType::I32: case GgufType::F32: return 4;
    case GgufType::U64: case GgufType::I64: case GgufType::F64: return 8;
    case GgufType::STRING: return 8;
    case GgufType::ARRAY: return 4 + 8;
  }
  return 1;
}

std::optional<uint64_t> gguf_tensor_bytes(DType type, const int64_t ne[kGgufMaxDims]) {
  const DTypeInfo& info = dtype_info(type);
  if (ne[0] % info.block_elems != 0) return std::nullopt;
  constexpr int64_t kMax = std::numeric_limits<int64_t>::max();
  int64_t elements = 1;
  for (int d = 0; d < kGgufMaxDims; ++d) {
    if (ne[d] < 1 || elements > kMax / ne[d]) return std::nullopt;
    elements *= ne[d];
  }
  const int64_t blocks = elements / info.block_elems;  // exact: ne[0] is a multiple
  if (blocks > kMax / info.block_bytes) return std::nullopt;
  return static_cast<uint64_t>(blocks * info.block_bytes);
}

namespace {

bool is_unsigned_int(GgufType t) {
  return t == GgufType::U8 || t == GgufType::U16 || t == GgufType::U32 || t == GgufType::U64;
}
bool is_signed_int(GgufType t) {
  return t == GgufType::I8 || t == GgufType::I16 || t == GgufType::I32 || t == GgufType::I64;
}

// Reads element k of a packed little-endian integer array as int64; nullopt if it does not fit.
std::optional<int64_t> int_element(const GgufValue& v, size_t k) {
  const uint8_t* p = v.raw.data() + k * gguf_value_min_bytes(v.elem_type);
  auto load = [p](auto x) {
    std::memcpy(&x, p, sizeof(x));
    return x;
  };
  switch (v.elem_type) {
    case GgufType::U8: return load(uint8_t{});
    case GgufType::I8: return load(int8_t{});
    case GgufType::U16: return load(uint16_t{});
    case GgufType::I16: return load(int16_t{});
    case GgufType::U32: return load(uint32_t{});
    case GgufType::I32: return load(int32_t{});
    case GgufType::I64: return load(int64_t{});
    case GgufType::U64: {
      const uint64_t u = load(uint64_t{});
      if (u > static_cast<uint64_t>(std::numeric_limits<int64_t>::max())) return std::nullopt;
      return static_cast<int64_t>(u);
    }
    default: return std::nullopt;
  }
}

std::string describe_type(const GgufValue& v) {
  if (v.is_array()) return fmt::format("array of {}", gguf_type_name(v.elem_type));
  return std::string(gguf_type_name(v.type));
}

}  // namespace

const GgufValue* GgufFile::find(std::string_view key) const {
  auto it = kv_.find(key);
  return it == kv_.end() ? nullptr : &it->second;
}

std::optional<std::string> GgufFile::get_string_opt(std::string_view key) const {
  const GgufValue* v = find(key);
  if (!v) return std::nullopt;
  if (v->type != GgufType::STRING)
    fail("{}: key '{}' has type {}, expected string", name_, key, describe_type(*v));
  return v->str;
}

std::string GgufFile::get_string(std::string_view key) const {
  auto v = get_string_opt(key);
  if (!v) fail("{}: required key '{}' is missing", name_, key);
  return *v;
}

std::optional<int64_t> GgufFile::get_int_opt(std::string_view key) const {
  const GgufValue* v = find(key);
  if (!v) return std::nullopt;
  if (is_signed_int(v->type)) return v->i;
  if (is_unsigned_int(v->type)) {
    if (v->u > static_cast<uint64_t>(std::numeric_limits<int64_t>::max()))
      fail("{}: key '{}' value {} does not fit in int64", name_, key, v->u);
    return static_cast<int64_t>(v->u);
  }
  fail("{}: key '{}' has type {}, expected an integer", name_, key, describe_type(*v));
}

int64_t GgufFile::get_int(std::string_view key) const {
  auto v = get_int_opt(key);
  if (!v) fail("{}: required key '{}' is missing", name_, key);
  return *v;
}

int64_t GgufFile::get_int_in(std::string_view key, int64_t lo, int64_t hi) const {
  const int64_t v = get_int(key);
  if (v < lo || v > hi) fail("{}: key '{}' value {} is outside {}..{}", name_, key, v, lo, hi);
  return v;
}

std::optional<double> GgufFile::get_float_opt(std::string_view key) const {
  const GgufValue* v = find(key);
  if (!v) return std::nullopt;
  if (v->type != GgufType::F32 && v->type != GgufType::F64)
    fail("{}: key '{}' has type {}, expected f32 or f64", name_, key, describe_type(*v));
  return v->f;
}

double GgufFile::get_float(std::string_view key) const {
  auto v = get_float_opt(key);
  if (!v) fail("{}: required key '{}' is missing", name_, key);
  return *v;
}

std::optional<bool> GgufFile::get_bool_opt(std::string_view key) const {
  const GgufValue* v = find(key);
  if (!v) return std::nullopt;
  if (v->type != GgufType::BOOL)
    fail("{}: key '{}' has type {}, expected bool", name_, key, describe_type(*v));
  return v->u != 0;
}

std::vector<std::string> GgufFile::get_string_array(std::string_view key) const {
  const GgufValue* v = find(key);
  if (!v) fail("{}: required key '{}' is missing", name_, key);
  if (!v->is_array() || v->elem_type != GgufType::STRING)
    fail("{}: key '{}' has type {}, expected array of string", name_, key, describe_type(*v));
  return v->strings;
}

std::vector<float> GgufFile::get_f32_array(std::string_view key) const {
  const GgufValue* v = find(key);
  if (!v) fail("{}: required key '{}' is missing", name_, key);
  if (!v->is_array() || v->elem_type != GgufType::F32)
    fail("{}: key '{}' has type {}, expected array of f32", name_, key, describe_type(*v));
  std::vector<float> out(static_cast<size_t>(v->array_size));
  if (!out.empty()) std::memcpy(out.data(), v->raw.data(), out.size() * sizeof(float));
  return out;
}

std::vector<int64_t> GgufFile::get_int_array(std::string_view key) const {
  const GgufValue* v = find(key);
  if (!v) fail("{}: required key '{}' is missing", name_, key);
  if (!v->is_array() || !(is_signed_int(v->elem_type) || is_unsigned_int(v->elem_type)))
    fail("{}: key '{}' has type {}, expected array of integers", name_, key, describe_type(*v));
  std::vector<int64_t> out(static_cast<size_t>(v->array_size));
  for (size_t k = 0; k < out.size(); ++k) {
    std::optional<int64_t> e = int_element(*v, k);
    if (!e) fail("{}: key '{}' element {} does not fit in int64", name_, key, k);
    out[k] = *e;
  }
  return out;
}

const GgufTensor* GgufFile::find_tensor(std::string_view name) const {
  auto it = tensor_index_.find(name);
  return it == tensor_index_.end() ? nullptr : &tensors_[it->second];
}

const GgufTensor& GgufFile::tensor(std::string_view name, const std::vector<int64_t>& shape,
                                   const std::vector<DType>& allowed) const {
  const GgufTensor* t = find_tensor(name);
  if (!t) fail("{}: required tensor '{}' is missing", name_, name);
  if (!allowed.empty()) {
    bool ok = false;
    for (DType d : allowed) ok = ok || d == t->type;
    if (!ok)
      fail("{}: tensor '{}' has type {}, which is not supported here", name_, name,
           dtype_info(t->type).name);
  }
  bool same = shape.size() <= static_cast<size_t>(kGgufMaxDims);
  for (int d = 0; same && d < kGgufMaxDims; ++d) {
    const int64_t want = d < static_cast<int>(shape.size()) ? shape[static_cast<size_t>(d)] : 1;
    same = t->ne[d] == want;
  }
  if (!same) {
    std::string want, have;
    for (int64_t s : shape) want += fmt::format("{}{}", want.empty() ? "" : ", ", s);
    for (int d = 0; d < t->n_dims; ++d) have += fmt::format("{}{}", d ? ", " : "", t->ne[d]);
    fail("{}: tensor '{}' has shape [{}], expected [{}]", name_, name, have, want);
  }
  return *t;
}

}  // namespace flashmem
