// GGUF v3 writer: metadata in insertion order, tensors laid out in insertion order, each at the
// next multiple of the alignment, zero padding in between.
#include <bit>
#include <cstring>
#include <functional>
#include <limits>

#include "gguf/gguf.h"
#include "gguf/gguf_internal.h"
#include "util/atomic_file.h"
#include "util/error.h"

namespace flashmem {
namespace {

constexpr uint32_t kGgufMagic = 0x46554747;  // "GGUF" little-endian
constexpr uint32_t kWriteVersion = 3;
constexpr char kAlignmentKey[] = "general.alignment";

using Emit = std::function<void(const void*, size_t)>;

class Encoder {
 public:
  explicit Encoder(const Emit& emit) : emit_(emit) {}
  template <typename T>
  void put(T v) {
    emit_(&v, sizeof(v));
    pos_ += sizeof(v);
  }
  void bytes(const void* p, size_t n) {
    if (n) emit_(p, n);
    pos_ += n;
  }
  void string(std::string_view s) {
    put<uint64_t>(s.size());
    bytes(s.data(), s.size());
  }
  void pad_to(uint64_t alignment) {
    static constexpr uint8_t kZeros[kGgufMaxAlignment] = {};
    const uint64_t pad = (alignment - pos_ % alignment) % alignment;
    bytes(kZeros, static_cast<size_t>(pad));
  }
  uint64_t pos() const { return pos_; }

 private:
  const Emit& emit_;
  uint64_t pos_ = 0;
};

void encode_scalar(Encoder& e, const GgufValue& v) {
  switch (v.type) {
    case GgufType::U8: e.put(static_cast<uint8_t>(v.u)); return;
    case GgufType::BOOL: e.put(static_cast<uint8_t>(v.u != 0)); return;
    case GgufType::U16: e.put(static_cast<uint16_t>(v.u)); return;
    case GgufType::U32: e.put(static_cast<uint32_t>(v.u)); return;
    case GgufType::U64: e.put(static_cast<uint64_t>(v.u)); return;
    case GgufType::I8: e.put(static_cast<int8_t>(v.i)); return;
    case GgufType::I16: e.put(static_cast<int16_t>(v.i)); return;
    case GgufType::I32: e.put(static_cast<int32_t>(v.i)); return;
    case GgufType::I64: e.put(static_cast<int64_t>(v.i)); return;
    case GgufType::F32: e.put(static_cast<float>(v.f)); return;
    case GgufType::F64: e.put(static_cast<double>(v.f)); return;
    case GgufType::STRING: e.string(v.str); return;
    case GgufType::ARRAY: break;
  }
}

void encode_value(Encoder& e, const GgufValue& v) {
  e.put(static_cast<uint32_t>(v.type));
  if (!v.is_array()) return encode_scalar(e, v);
  e.put(static_cast<uint32_t>(v.elem_type));
  e.put<uint64_t>(v.array_size);
  if (v.elem_type == GgufType::STRING) {
    for (const std::string& s : v.strings) e.string(s);
  } else {
    e.bytes(v.raw.data(), v.raw.size());
  }
}

// Checks that a caller-built value is encodable and self-consistent.
void check_value(const std::string& key, const GgufValue& v) {
  if (static_cast<uint32_t>(v.type) > static_cast<uint32_t>(GgufType::F64))
    fail("gguf writer: key '{}': invalid value type", key);
  if (!v.is_array()) return;
  if (v.elem_type == GgufType::ARRAY || static_cast<uint32_t>(v.elem_type) >
                                            static_cast<uint32_t>(GgufType::F64))
    fail("gguf writer: key '{}': invalid array element type", key);
  if (v.elem_type == GgufType::STRING) {
    if (v.strings.size() != v.array_size)
      fail("gguf writer: key '{}': {} strings but array_size {}", key, v.strings.size(),
           v.array_size);
  } else if (v.raw.size() / gguf_value_min_bytes(v.elem_type) != v.array_size ||
             v.raw.size() % gguf_value_min_bytes(v.elem_type) != 0) {
    fail("gguf writer: key '{}': {} raw bytes do not hold {} elements of {}", key, v.raw.size(),
         v.array_size, gguf_type_name(v.elem_type));
  }
}

GgufValue scalar(GgufType type) {
  GgufValue v;
  v.type = type;
  return v;
}

template <typename T>
GgufValue packed_array(GgufType elem, const std::vector<T>& values) {
  GgufValue v = scalar(GgufType::ARRAY);
  v.elem_type = elem;
  v.array_size = values.size();
  v.raw.resize(values.size() * sizeof(T));
  if (!values.empty()) std::memcpy(v.raw.data(), values.data(), v.raw.size());
  return v;
}

}  // namespace

void GgufWriter::set_value(const std::string& key, const GgufValue& v) {
  check_value(key, v);
  if (key == kAlignmentKey) {
    // The alignment is a property of the layout: it is written from alignment_ (see to_bytes).
    if (v.type != GgufType::U32 || v.u > std::numeric_limits<uint32_t>::max())
      fail("gguf writer: general.alignment must be a u32");
    set_alignment(static_cast<uint32_t>(v.u));
    return;
  }
  for (auto& [k, existing] : kv_) {
    if (k == key) {
      existing = v;
      return;
    }
  }
  kv_.emplace_back(key, v);
}

void GgufWriter::set_u8(const std::string& key, uint8_t x) {
  GgufValue v = scalar(GgufType::U8);
  v.u = x;
  set_value(key, v);
}
void GgufWriter::set_i32(const std::string& key, int32_t x) {
  GgufValue v = scalar(GgufType::I32);
  v.i = x;
  set_value(key, v);
}
void GgufWriter::set_u32(const std::string& key, uint32_t x) {
  GgufValue v = scalar(GgufType::U32);
  v.u = x;
  set_value(key, v);
}
void GgufWriter::set_i64(const std::string& key, int64_t x) {
  GgufValue v = scalar(GgufType::I64);
  v.i = x;
  set_value(key, v);
}
void GgufWriter::set_u64(const std::string& key, uint64_t x) {
  GgufValue v = scalar(GgufType::U64);
  v.u = x;
  set_value(key, v);
}
void GgufWriter::set_f32(const std::string& key, float x) {
  GgufValue v = scalar(GgufType::F32);
  v.f = x;
  set_value(key, v);
}
void GgufWriter::set_f64(const std::string& key, double x) {
  GgufValue v = scalar(GgufType::F64);
  v.f = x;
  set_value(key, v);
}
void GgufWriter::set_bool(const std::string& key, bool x) {
  GgufValue v = scalar(GgufType::BOOL);
  v.u = x ? 1 : 0;
  set_value(key, v);
}
void GgufWriter::set_string(const std::string& key, const std::string& x) {
  GgufValue v = scalar(GgufType::STRING);
  v.str = x;
  set_value(key, v);
}
void GgufWriter::set_string_array(const std::string& key, const std::vector<std::string>& x) {
  GgufValue v = scalar(GgufType::ARRAY);
  v.elem_type = GgufType::STRING;
  v.array_size = x.size();
  v.strings = x;
  set_value(key, v);
}
void GgufWriter::set_f32_array(const std::string& key, const std::vector<float>& x) {
  set_value(key, packed_array(GgufType::F32, x));
}
void GgufWriter::set_i32_array(const std::string& key, const std::vector<int32_t>& x) {
  set_value(key, packed_array(GgufType::I32, x));
}

void GgufWriter::add_tensor(const std::string& name, DType type,
                            const std::vector<int64_t>& shape, const void* data,
                            size_t n_bytes) {
  for (const PendingTensor& t : tensors_)
    if (t.name == name) fail("gguf writer: duplicate tensor name '{}'", name);
  if (shape.empty() || shape.size() > static_cast<size_t>(kGgufMaxDims))
    fail("gguf writer: tensor '{}': {} dims, expected 1..{}", name, shape.size(), kGgufMaxDims);
  int64_t ne[kGgufMaxDims] = {1, 1, 1, 1};
  for (size_t d = 0; d < shape.size(); ++d) ne[d] = shape[d];
  const std::optional<uint64_t> expected = gguf_tensor_bytes(type, ne);
  if (!expected)
    fail("gguf writer: tensor '{}': invalid shape for {} (dims must be >= 1, ne[0] a multiple of "
         "the block size, sizes within int64)",
         name, dtype_info(type).name);
  if (*expected != n_bytes)
    fail("gguf writer: tensor '{}': {} bytes given, shape needs {}", name, n_bytes, *expected);
  const auto* p = static_cast<const uint8_t*>(data);
  tensors_.push_back({name, type, shape, std::vector<uint8_t>(p, p + n_bytes)});
}

GgufWriter GgufWriter::from_file(const GgufFile& file) {
  GgufWriter w;
  w.set_alignment(file.alignment());
  for (const std::string& key : file.keys()) w.set_value(key, *file.find(key));
  for (const GgufTensor& t : file.tensors())
    w.add_tensor(t.name, t.type, std::vector<int64_t>(t.ne, t.ne + t.n_dims), t.data, t.n_bytes);
  return w;
}

void GgufWriter::set_alignment(uint32_t alignment) {
  if (alignment == 0 || !std::has_single_bit(alignment) || alignment > kGgufMaxAlignment)
    fail("gguf writer: alignment {} is not a power of two in 1..{}", alignment,
         kGgufMaxAlignment);
  alignment_ = alignment;
}

void GgufWriter::serialize(const std::function<void(const void*, size_t)>& emit) const {
  Encoder e(emit);
  const bool write_alignment = alignment_ != kGgufDefaultAlignment;
  e.put(kGgufMagic);
  e.put(kWriteVersion);
  e.put<uint64_t>(tensors_.size());
  e.put<uint64_t>(kv_.size() + (write_alignment ? 1 : 0));
  if (write_alignment) {
    // First, so that a file read back and re-written keeps the same byte order.
    e.string(kAlignmentKey);
    e.put(static_cast<uint32_t>(GgufType::U32));
    e.put(alignment_);
  }
  for (const auto& [key, value] : kv_) {
    e.string(key);
    encode_value(e, value);
  }
  uint64_t offset = 0;
  for (const PendingTensor& t : tensors_) {
    e.string(t.name);
    e.put<uint32_t>(static_cast<uint32_t>(t.shape.size()));
    for (int64_t n : t.shape) e.put<uint64_t>(static_cast<uint64_t>(n));
    e.put(static_cast<uint32_t>(t.type));
    e.put<uint64_t>(offset);
    offset += (t.data.size() + alignment_ - 1) / alignment_ * alignment_;
  }
  e.pad_to(alignment_);
  for (const PendingTensor& t : tensors_) {
    e.bytes(t.data.data(), t.data.size());
    e.pad_to(alignment_);
  }
}

std::vector<uint8_t> GgufWriter::to_bytes() const {
  std::vector<uint8_t> out;
  serialize([&out](const void* p, size_t n) {
    const auto* b = static_cast<const uint8_t*>(p);
    out.insert(out.end(), b, b + n);
  });
  return out;
}

void GgufWriter::write(const std::string& path) const {
  // Small fields are batched: one write(2) per field would make a 150k-token vocabulary cost
  // 300k system calls. 1 MiB keeps the buffer small next to any tensor.
  constexpr size_t kBufferBytes = 1 << 20;
  write_file_atomic(path, [&](FileSink& sink) {
    std::vector<uint8_t> buffer;
    buffer.reserve(kBufferBytes);
    serialize([&](const void* p, size_t n) {
      if (buffer.size() + n > kBufferBytes) {
        sink.write(buffer.data(), buffer.size());
        buffer.clear();
      }
      if (n >= kBufferBytes) {
        sink.write(p, n);
      } else {
        const auto* b = static_cast<const uint8_t*>(p);
        buffer.insert(buffer.end(), b, b + n);
      }
    });
    sink.write(buffer.data(), buffer.size());
  });
}

}  // namespace flashmem
