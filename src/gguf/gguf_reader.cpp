// GGUF reader: validates the whole header before building anything.
//
// Parsing runs twice over the header. The first pass (build = false) checks every count, length,
// type, shape, offset, duplicate and overlap while allocating only O(n) string_views/offsets
// (bounded by the file size); the second pass (build = true) runs on a header that is known to be
// good and fills the maps. So rejecting a file never costs more than about the file's own size in
// memory, however large the counts it claims.
#include <algorithm>
#include <bit>
#include <cstring>
#include <limits>

#include "gguf/gguf.h"
#include "gguf/gguf_internal.h"
#include "util/error.h"
#include "util/printable.h"

namespace flashmem {
namespace {

static_assert(std::endian::native == std::endian::little,
              "the reader copies little-endian fields straight from the file");

constexpr uint32_t kGgufMagic = 0x46554747;  // "GGUF" read as a little-endian u32
constexpr uint32_t kMinVersion = 2;          // v1 used 32-bit counts; v2 and v3 share the layout
constexpr uint32_t kMaxVersion = 3;
constexpr uint64_t kHeaderBytes = 4 + 4 + 8 + 8;  // magic, version, n_tensors, n_kv
// Smallest possible kv: empty key (u64 length), u32 type, 1-byte value (u8/i8/bool).
constexpr uint64_t kMinKvBytes = 8 + 4 + 1;
// Smallest possible tensor info: empty name, u32 n_dims, one u64 ne, u32 type, u64 offset.
constexpr uint64_t kMinTensorInfoBytes = 8 + 4 + 8 + 4 + 8;

// Bounds-checked little-endian cursor. Every read states what it reads so that a failure names
// the field; `context` (the current key or tensor) is prefixed.
class Cursor {
 public:
  Cursor(const uint8_t* data, size_t size, const std::string& file)
      : data_(data), size_(size), file_(file) {}

  size_t pos() const { return pos_; }
  uint64_t left() const { return size_ - pos_; }
  // What is being read, for error messages; formatted only when an error is thrown, so that
  // a header with a million keys is not a million string formats.
  enum class Context { kNone, kKvIndex, kKey, kTensorIndex, kTensor };
  void set_context(Context kind, uint64_t index = 0, std::string_view name = {}) {
    context_ = kind;
    context_index_ = index;
    context_name_ = name;
  }

  [[noreturn]] void error(std::string_view what, const std::string& problem) const {
    std::string where;
    switch (context_) {
      case Context::kNone: break;
      case Context::kKvIndex: where = fmt::format("kv #{}: ", context_index_); break;
      case Context::kKey: where = fmt::format("key '{}': ", printable(context_name_)); break;
      case Context::kTensorIndex: where = fmt::format("tensor #{}: ", context_index_); break;
      case Context::kTensor: where = fmt::format("tensor '{}': ", printable(context_name_)); break;
    }
    fail("{}: {}{}: {}", file_, where, what, problem);
  }

  void need(uint64_t n, std::string_view what) const {
    if (n > left())
      error(what, fmt::format("needs {} bytes at offset {} but only {} remain (truncated file)", n,
                              pos_, left()));
  }

  template <typename T>
  T read(std::string_view what) {
    need(sizeof(T), what);
    T value;
    std::memcpy(&value, data_ + pos_, sizeof(T));
    pos_ += sizeof(T);
    return value;
  }

  const uint8_t* take(uint64_t n, std::string_view what) {
    need(n, what);
    const uint8_t* p = data_ + pos_;
    pos_ += n;
    return p;
  }

  // u64 length + bytes. The length is compared with the bytes left before anything else, so
  // 2^64 - 1 cannot wrap.
  std::string_view read_string(std::string_view what) {
    const uint64_t len = read<uint64_t>(what);
    if (len > left())
      error(what, fmt::format("string length {} exceeds the {} bytes left in the file", len,
                              left()));
    const auto* p = reinterpret_cast<const char*>(take(len, what));
    return {p, static_cast<size_t>(len)};
  }

 private:
  const uint8_t* data_;
  size_t size_;
  size_t pos_ = 0;
  const std::string& file_;
  Context context_ = Context::kNone;
  uint64_t context_index_ = 0;
  std::string_view context_name_;
};

// Reads a value type id as a u32 and validates it before it becomes a GgufType.
GgufType read_type(Cursor& c, std::string_view what) {
  const uint32_t id = c.read<uint32_t>(what);
  if (id > static_cast<uint32_t>(GgufType::F64))
    c.error(what, fmt::format("unknown value type {}", id));
  return static_cast<GgufType>(id);
}

void check_bools(Cursor& c, const uint8_t* p, uint64_t n) {
  for (uint64_t k = 0; k < n; ++k)
    if (p[k] > 1) c.error("bool", fmt::format("value {} is neither 0 nor 1", p[k]));
}

// Reads one value of `type`; fills `out` only when `out` is non-null (build pass).
void read_value(Cursor& c, GgufType type, GgufValue* out) {
  if (out) out->type = type;
  switch (type) {
    case GgufType::STRING: {
      std::string_view s = c.read_string("string value");
      if (out) out->str.assign(s);
      return;
    }
    case GgufType::ARRAY: {
      const GgufType elem = read_type(c, "array element type");
      if (elem == GgufType::ARRAY) c.error("array element type", "nested arrays are not supported");
      const uint64_t count = c.read<uint64_t>("array count");
      const uint64_t min_elem = gguf_value_min_bytes(elem);
      if (count > c.left() / min_elem)
        c.error("array count",
                fmt::format("{} elements of {} need at least {} bytes each but only {} bytes "
                            "remain",
                            count, gguf_type_name(elem), min_elem, c.left()));
      if (out) {
        out->elem_type = elem;
        out->array_size = count;
      }
      if (elem == GgufType::STRING) {
        // count <= left / 8 here, so the reservation is bounded by 4x the bytes left.
        if (out) out->strings.reserve(static_cast<size_t>(count));
        for (uint64_t k = 0; k < count; ++k) {
          std::string_view s = c.read_string("array string element");
          if (out) out->strings.emplace_back(s);
        }
      } else {
        const uint64_t n_bytes = count * min_elem;  // no overflow: count <= left / min_elem
        const uint8_t* p = c.take(n_bytes, "array data");
        if (elem == GgufType::BOOL) check_bools(c, p, count);
        if (out) out->raw.assign(p, p + n_bytes);
      }
      return;
    }
    case GgufType::U8: {
      const auto v = c.read<uint8_t>("u8 value");
      if (out) out->u = v;
      return;
    }
    case GgufType::BOOL: {
      const auto v = c.read<uint8_t>("bool value");
      check_bools(c, &v, 1);
      if (out) out->u = v;
      return;
    }
    case GgufType::U16: {
      const auto v = c.read<uint16_t>("u16 value");
      if (out) out->u = v;
      return;
    }
    case GgufType::U32: {
      const auto v = c.read<uint32_t>("u32 value");
      if (out) out->u = v;
      return;
    }
    case GgufType::U64: {
      const auto v = c.read<uint64_t>("u64 value");
      if (out) out->u = v;
      return;
    }
    case GgufType::I8: {
      const auto v = c.read<int8_t>("i8 value");
      if (out) out->i = v;
      return;
    }
    case GgufType::I16: {
      const auto v = c.read<int16_t>("i16 value");
      if (out) out->i = v;
      return;
    }
    case GgufType::I32: {
      const auto v = c.read<int32_t>("i32 value");
      if (out) out->i = v;
      return;
    }
    case GgufType::I64: {
      const auto v = c.read<int64_t>("i64 value");
      if (out) out->i = v;
      return;
    }
    case GgufType::F32: {
      const auto v = c.read<float>("f32 value");
      if (out) out->f = v;
      return;
    }
    case GgufType::F64: {
      const auto v = c.read<double>("f64 value");
      if (out) out->f = v;
      return;
    }
  }
  c.error("value type", "unknown value type");  // unreachable: read_type validated it
}

// The string whose u64 length field starts at `pos` (already validated by a Cursor).
std::string_view string_at(const uint8_t* data, uint64_t pos) {
  uint64_t len;
  std::memcpy(&len, data + pos, sizeof(len));
  return {reinterpret_cast<const char*>(data + pos + sizeof(len)), static_cast<size_t>(len)};
}

// Rejects the first name that occurs twice. Names are kept as file positions (8 bytes each,
// less than the smallest kv or tensor info) so that the check costs less memory than the file.
// `items` is sorted by name in place; `pos_of(item)` gives the position of its name.
template <typename T, typename PosOf>
void check_unique(std::vector<T>& items, PosOf pos_of, const uint8_t* data,
                  const std::string& file, std::string_view what) {
  auto name = [&](const T& item) { return string_at(data, pos_of(item)); };
  std::sort(items.begin(), items.end(),
            [&](const T& a, const T& b) { return name(a) < name(b); });
  auto dup = std::adjacent_find(items.begin(), items.end(),
                                [&](const T& a, const T& b) { return name(a) == name(b); });
  if (dup != items.end()) fail("{}: duplicate {} '{}'", file, what, printable(name(*dup)));
}

}  // namespace

void GgufFile::parse_all() {
  // Pass 1 validates everything (throws on the first problem); pass 2 builds.
  parse_header(false);
  parse_header(true);
}

void GgufFile::parse_header(bool build) {
  Cursor c(data_, size_, name_);
  if (size_ < kHeaderBytes) {
    if (size_ >= 4 && c.read<uint32_t>("magic") != kGgufMagic)
      c.error("magic", "not a GGUF file (expected \"GGUF\")");
    fail("{}: header: file is {} bytes, too small for a GGUF header ({} bytes)", name_, size_,
         kHeaderBytes);
  }
  if (c.read<uint32_t>("magic") != kGgufMagic)
    c.error("magic", "not a GGUF file (expected \"GGUF\")");
  version_ = c.read<uint32_t>("version");
  if (version_ < kMinVersion || version_ > kMaxVersion)
    c.error("version", fmt::format("unsupported GGUF version {} (supported: {}..{})", version_,
                                   kMinVersion, kMaxVersion));
  const uint64_t n_tensors = c.read<uint64_t>("n_tensors");
  const uint64_t n_kv = c.read<uint64_t>("n_kv");
  if (n_kv > c.left() / kMinKvBytes)
    c.error("n_kv", fmt::format("{} key-value pairs need at least {} bytes each but only {} "
                                "bytes remain",
                                n_kv, kMinKvBytes, c.left()));
  if (n_tensors > c.left() / kMinTensorInfoBytes ||
      n_tensors * kMinTensorInfoBytes > c.left() - n_kv * kMinKvBytes)
    c.error("n_tensors", fmt::format("{} tensor infos need at least {} bytes each but only {} "
                                     "bytes remain after the key-value pairs",
                                     n_tensors, kMinTensorInfoBytes,
                                     c.left() - n_kv * kMinKvBytes));

  // ---- key-value pairs ----
  alignment_ = kGgufDefaultAlignment;
  // Validation-pass bookkeeping: 8 bytes per kv (each is >= 13 bytes in the file).
  std::vector<uint64_t> names;
  if (!build) names.reserve(static_cast<size_t>(n_kv));
  key_order_.clear();
  kv_.clear();
  for (uint64_t k = 0; k < n_kv; ++k) {
    c.set_context(Cursor::Context::kKvIndex, k);
    const uint64_t key_pos = c.pos();
    std::string_view key = c.read_string("key");
    c.set_context(Cursor::Context::kKey, k, key);
    const GgufType type = read_type(c, "value type");
    const bool is_alignment = key == "general.alignment";
    if (is_alignment && type != GgufType::U32)
      c.error("alignment", fmt::format("has type {}, expected u32", gguf_type_name(type)));
    GgufValue scratch;  // the validation pass keeps only general.alignment (a scalar)
    GgufValue* out = is_alignment ? &scratch : nullptr;
    if (build) {
      key_order_.emplace_back(key);
      out = &kv_[std::string(key)];
      out->value_offset = c.pos();
    } else {
      names.push_back(key_pos);
    }
    read_value(c, type, out);
    if (is_alignment) {
      if (out->u == 0 || !std::has_single_bit(out->u) || out->u > kGgufMaxAlignment)
        c.error("alignment",
                fmt::format("{} is not a power of two in 1..{}", out->u, kGgufMaxAlignment));
      alignment_ = static_cast<uint32_t>(out->u);
    }
  }
  c.set_context(Cursor::Context::kNone);
  if (!build) check_unique(names, [](uint64_t p) { return p; }, data_, name_, "key");

  // ---- tensor infos ----
  // 24 bytes per tensor (each tensor info is >= 32 bytes in the file).
  struct Extent {
    uint64_t name_pos, offset, n_bytes;
  };
  std::vector<Extent> extents;
  names = {};
  if (!build) {
    extents.reserve(static_cast<size_t>(n_tensors));
  } else {
    tensors_.clear();
    tensor_index_.clear();
    tensors_.reserve(static_cast<size_t>(n_tensors));
  }
  for (uint64_t t = 0; t < n_tensors; ++t) {
    GgufTensor info;
    c.set_context(Cursor::Context::kTensorIndex, t);
    const uint64_t name_pos = c.pos();
    std::string_view tname = c.read_string("name");
    c.set_context(Cursor::Context::kTensor, t, tname);
    const uint32_t n_dims = c.read<uint32_t>("n_dims");
    if (n_dims < 1 || n_dims > static_cast<uint32_t>(kGgufMaxDims))
      c.error("n_dims", fmt::format("{} is outside 1..{}", n_dims, kGgufMaxDims));
    info.n_dims = static_cast<int>(n_dims);
    for (uint32_t d = 0; d < n_dims; ++d) {
      const auto ne = c.read<uint64_t>("ne");
      // Zero is rejected along with negative sizes: a 0-element tensor has no bytes to place,
      // no writer of ours produces one, and downstream code divides by ne and rows.
      if (ne == 0 || ne > static_cast<uint64_t>(std::numeric_limits<int64_t>::max()))
        c.error(fmt::format("ne[{}]", d),
                fmt::format("{} is not a positive dimension", static_cast<int64_t>(ne)));
      info.ne[d] = static_cast<int64_t>(ne);
    }
    const uint32_t type_id = c.read<uint32_t>("type");
    const std::optional<DType> dtype = dtype_from_id(type_id);
    if (!dtype) {
      const auto as_signed = static_cast<int32_t>(type_id);
      c.error("type", as_signed < 0
                          ? fmt::format("negative tensor type id {}", as_signed)
                          : fmt::format("unsupported tensor type id {}", type_id));
    }
    info.type = *dtype;
    info.offset = c.read<uint64_t>("offset");
    if (info.offset % alignment_ != 0)
      c.error("offset", fmt::format("{} is not a multiple of the alignment {}", info.offset,
                                    alignment_));
    const std::optional<uint64_t> n_bytes = gguf_tensor_bytes(info.type, info.ne);
    if (!n_bytes) {
      const DTypeInfo& ti = dtype_info(info.type);
      if (info.ne[0] % ti.block_elems != 0)
        c.error("ne[0]", fmt::format("{} is not a multiple of the {} block size {}", info.ne[0],
                                     ti.name, ti.block_elems));
      c.error("shape", fmt::format("[{}, {}, {}, {}] overflows the element count or byte size",
                                   info.ne[0], info.ne[1], info.ne[2], info.ne[3]));
    }
    info.n_bytes = *n_bytes;
    if (build) {
      info.name.assign(tname);
      tensor_index_.emplace(info.name, tensors_.size());
      tensors_.push_back(std::move(info));
    } else {
      extents.push_back({name_pos, info.offset, info.n_bytes});
    }
  }
  c.set_context(Cursor::Context::kNone);
  if (!build)
    check_unique(extents, [](const Extent& e) { return e.name_pos; }, data_, name_, "tensor name");

  // ---- data section ----
  const uint64_t pad = (alignment_ - c.pos() % alignment_) % alignment_;
  if (pad > c.left()) {
    // Files without tensors may end right after the header; anything else needs its data.
    if (n_tensors != 0)
      fail("{}: data section: starts at {} after padding, past the end of the file ({} bytes)",
           name_, c.pos() + pad, size_);
    data_offset_ = size_;
  } else {
    data_offset_ = c.pos() + pad;
  }
  const uint64_t data_size = size_ - data_offset_;
  if (!build) {
    std::sort(extents.begin(), extents.end(),
              [](const Extent& a, const Extent& b) { return a.offset < b.offset; });
    uint64_t end = 0;
    for (size_t k = 0; k < extents.size(); ++k) {
      const Extent& e = extents[k];
      if (e.offset > data_size || e.n_bytes > data_size - e.offset)
        fail("{}: tensor '{}': offset: {} bytes at offset {} extend past the end of the data "
             "section ({} bytes)",
             name_, printable(string_at(data_, e.name_pos)), e.n_bytes, e.offset, data_size);
      if (k > 0 && e.offset < end)
        fail("{}: tensor '{}': offset: data at {} overlaps tensor '{}' which ends at {}", name_,
             printable(string_at(data_, e.name_pos)), e.offset,
             printable(string_at(data_, extents[k - 1].name_pos)), end);
      end = e.offset + e.n_bytes;
    }
  } else {
    for (GgufTensor& t : tensors_) t.data = data_ + data_offset_ + t.offset;
  }
}

GgufFile GgufFile::open(const std::string& path, FileMemory memory) {
  auto map = std::make_shared<MappedFile>(path, memory);
  GgufFile file;
  file.map_ = map;
  file.data_ = map->data();
  file.size_ = map->size();
  file.name_ = path;
  file.parse_all();
  return file;
}

GgufFile GgufFile::parse(const uint8_t* data, size_t size, std::string name) {
  GgufFile file;
  file.data_ = data;
  file.size_ = size;
  file.name_ = std::move(name);
  file.parse_all();
  return file;
}

}  // namespace flashmem
