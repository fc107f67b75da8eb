// GGUF v3 container: reader over a memory map (or a caller's buffer) and an atomic writer.
// One reader/writer for every file flashmem touches (models, indexers, dumps).
//
// The reader validates every count, length, type, shape, offset and size against the bytes that
// are actually there before it allocates or reads (RELIABILITY.md); a malformed file is rejected
// with flashmem::Error("...") — never a crash, an abort or an allocation the file cannot justify.
#pragma once
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "tensor/dtype.h"
#include "util/mapped_file.h"

namespace flashmem {

// GGUF metadata value type ids.
enum class GgufType : uint32_t {
  U8 = 0, I8 = 1, U16 = 2, I16 = 3, U32 = 4, I32 = 5, F32 = 6, BOOL = 7,
  STRING = 8, ARRAY = 9, U64 = 10, I64 = 11, F64 = 12,
};
std::string_view gguf_type_name(GgufType type);

constexpr int kGgufMaxDims = 4;
constexpr uint32_t kGgufDefaultAlignment = 32;
// Largest general.alignment accepted: 64 KiB covers every page size a reader may want to align
// tensors to (4K, 16K, 64K pages) and bounds the padding a file can demand per tensor.
constexpr uint32_t kGgufMaxAlignment = 1u << 16;

// One metadata value. Scalars: `type` is the scalar type. Arrays: type == ARRAY, `elem_type` is
// the element type (never ARRAY: nested arrays are rejected), numeric elements are stored
// little-endian packed in `raw`, string elements in `strings`.
struct GgufValue {
  GgufType type = GgufType::U8;
  GgufType elem_type = GgufType::U8;
  uint64_t u = 0;            // unsigned integer scalars and BOOL (0/1)
  int64_t i = 0;             // signed integer scalars
  double f = 0;              // F32 / F64 scalars
  std::string str;           // STRING scalar
  std::vector<uint8_t> raw;  // numeric array elements, packed
  std::vector<std::string> strings;  // STRING array elements
  uint64_t array_size = 0;   // number of array elements
  uint64_t value_offset = 0; // reader: file position of the value's encoding (after its type id)

  bool is_array() const { return type == GgufType::ARRAY; }
};

struct GgufTensor {
  std::string name;
  DType type = DType::F32;
  int n_dims = 0;
  int64_t ne[kGgufMaxDims] = {1, 1, 1, 1};  // ne[0] is the fastest-varying (row length)
  uint64_t offset = 0;       // relative to the start of the data section
  uint64_t n_bytes = 0;
  const uint8_t* data = nullptr;  // points into the mapping / buffer

  int64_t n_elements() const { return ne[0] * ne[1] * ne[2] * ne[3]; }
  int64_t rows() const { return ne[1] * ne[2] * ne[3]; }
};

class GgufFile {
 public:
  // Maps (or with FileMemory::kHugePages reads, util/mapped_file.h) and parses a file. Throws
  // Error (message names the file and the bad field).
  static GgufFile open(const std::string& path, FileMemory memory = FileMemory::kMap);
  // Parses a caller-owned buffer (fuzzing, tests); the buffer must outlive the GgufFile.
  static GgufFile parse(const uint8_t* data, size_t size, std::string name = "<memory>");

  uint32_t version() const { return version_; }
  uint32_t alignment() const { return alignment_; }
  const std::string& name() const { return name_; }
  size_t file_size() const { return size_; }
  const uint8_t* file_data() const { return data_; }
  // How the file reached memory (kMap also for parse()d buffers).
  FileMemory memory() const { return map_ ? map_->memory() : FileMemory::kMap; }
  uint64_t data_offset() const { return data_offset_; }

  // ---- metadata ----
  const std::vector<std::string>& keys() const { return key_order_; }  // file order
  const GgufValue* find(std::string_view key) const;
  bool has(std::string_view key) const { return find(key) != nullptr; }

  // Typed getters. The required forms throw Error naming the key when it is missing or has an
  // incompatible type; the optional forms return nullopt when missing and throw on a wrong type.
  // Integer getters accept any integer type whose value fits; float getters accept F32/F64.
  std::string get_string(std::string_view key) const;
  std::optional<std::string> get_string_opt(std::string_view key) const;
  int64_t get_int(std::string_view key) const;
  std::optional<int64_t> get_int_opt(std::string_view key) const;
  // get_int plus a range check: throws Error naming the key unless lo <= value <= hi.
  int64_t get_int_in(std::string_view key, int64_t lo, int64_t hi) const;
  double get_float(std::string_view key) const;
  std::optional<double> get_float_opt(std::string_view key) const;
  std::optional<bool> get_bool_opt(std::string_view key) const;
  // Arrays: element type must match (any integer type for get_int_array).
  std::vector<std::string> get_string_array(std::string_view key) const;
  std::vector<float> get_f32_array(std::string_view key) const;
  std::vector<int64_t> get_int_array(std::string_view key) const;

  // ---- tensors ----
  const std::vector<GgufTensor>& tensors() const { return tensors_; }
  const GgufTensor* find_tensor(std::string_view name) const;
  // Throws Error if missing, if the type is not one of `allowed` (empty = any), or if the shape
  // differs from `shape` (ne order, trailing 1s ignored).
  const GgufTensor& tensor(std::string_view name, const std::vector<int64_t>& shape,
                           const std::vector<DType>& allowed = {}) const;

 private:
  GgufFile() = default;
  void parse_all();
  void parse_header(bool build);  // build = false: validate only; true: fill the tables

  std::shared_ptr<MappedFile> map_;
  const uint8_t* data_ = nullptr;
  size_t size_ = 0;
  std::string name_;
  uint32_t version_ = 0;
  uint32_t alignment_ = kGgufDefaultAlignment;
  uint64_t data_offset_ = 0;
  std::vector<std::string> key_order_;
  std::map<std::string, GgufValue, std::less<>> kv_;
  std::vector<GgufTensor> tensors_;
  std::map<std::string, size_t, std::less<>> tensor_index_;
};

// Builds a GGUF file in memory and writes it atomically (temp file, fsync, rename).
class GgufWriter {
 public:
  GgufWriter() = default;
  // A writer holding every key (file order) and tensor (copied) of `file`, with its alignment:
  // to_bytes() of a file our writer produced gives back the same bytes.
  static GgufWriter from_file(const GgufFile& file);

  void set_u8(const std::string& key, uint8_t v);
  void set_i32(const std::string& key, int32_t v);
  void set_u32(const std::string& key, uint32_t v);
  void set_i64(const std::string& key, int64_t v);
  void set_u64(const std::string& key, uint64_t v);
  void set_f32(const std::string& key, float v);
  void set_f64(const std::string& key, double v);
  void set_bool(const std::string& key, bool v);
  void set_string(const std::string& key, const std::string& v);
  void set_string_array(const std::string& key, const std::vector<std::string>& v);
  void set_f32_array(const std::string& key, const std::vector<float>& v);
  void set_i32_array(const std::string& key, const std::vector<int32_t>& v);
  // Generic: any value (used by round-trip tests and by tools that copy metadata).
  void set_value(const std::string& key, const GgufValue& v);

  // Adds a tensor; `data` holds row_bytes(type, ne[0]) * rows bytes and is copied.
  // shape is in ne order (ne[0] first). Throws Error on a duplicate name or bad shape.
  void add_tensor(const std::string& name, DType type, const std::vector<int64_t>& shape,
                  const void* data, size_t n_bytes);

  void set_alignment(uint32_t alignment);  // power of two; writes general.alignment if != 32

  // Serialises everything; the result is a valid GGUF v3 file.
  std::vector<uint8_t> to_bytes() const;
  void write(const std::string& path) const;  // atomic

 private:
  struct PendingTensor {
    std::string name;
    DType type;
    std::vector<int64_t> shape;
    std::vector<uint8_t> data;
  };
  // Streams the whole file, in order, through `emit`.
  void serialize(const std::function<void(const void*, size_t)>& emit) const;

  std::vector<std::pair<std::string, GgufValue>> kv_;  // insertion order
  std::vector<PendingTensor> tensors_;
  uint32_t alignment_ = kGgufDefaultAlignment;
};

}  // namespace flashmem
