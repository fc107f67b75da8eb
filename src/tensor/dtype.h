// Element types of weights and caches, with GGUF's type ids and block layouts.
#pragma once
#include <cstddef>
#include <cstdint>
#include <optional>
#include <string_view>

namespace flashmem {

// Values are the ggml/GGUF type ids, so they can be read straight from a tensor table.
enum class DType : uint32_t {
  F32 = 0,
  F16 = 1,
  Q4_0 = 2,
  Q8_0 = 8,
  I8 = 24,
  I16 = 25,
  I32 = 26,
  BF16 = 30,
};

// Q8_0 block: 32 weights = fp16 scale d + 32 int8; w = d * q.
constexpr int kQ8Block = 32;
struct BlockQ8_0 {
  uint16_t d;       // fp16 scale
  int8_t qs[kQ8Block];
};
static_assert(sizeof(BlockQ8_0) == 34);

// Q4_0 block: 32 weights = fp16 scale d + 16 bytes; element j < 16 is the low nibble of qs[j],
// element j + 16 the high nibble; w = d * (nibble - 8).
constexpr int kQ4Block = 32;
struct BlockQ4_0 {
  uint16_t d;            // fp16 scale
  uint8_t qs[kQ4Block / 2];
};
static_assert(sizeof(BlockQ4_0) == 18);

struct DTypeInfo {
  std::string_view name;   // as llama.cpp prints it: "f32", "f16", "bf16", "q8_0", "q4_0", ...
  int64_t block_elems;     // elements per block (1 for plain types)
  int64_t block_bytes;     // bytes per block
};

// Info for a type id read from a file; nullopt for ids we do not support.
std::optional<DType> dtype_from_id(uint32_t id);
const DTypeInfo& dtype_info(DType type);
std::optional<DType> dtype_from_name(std::string_view name);

// The GGUF `general.file_type` of a model whose matrices are `type`: llama.cpp's llama_ftype
// numbering (ALL_F32 0, MOSTLY_F16 1, MOSTLY_Q4_0 2, MOSTLY_Q8_0 7, MOSTLY_BF16 32), which is not
// the tensor type id (Q8_0 is tensor type 8, but file type 8 means MOSTLY_Q5_0). nullopt for
// types no file type names (I8, I16, I32).
std::optional<uint32_t> gguf_file_type(DType type);

// Bytes of a row of n elements; n must be a multiple of the block size (callers validate).
inline size_t row_bytes(DType type, int64_t n) {
  const DTypeInfo& info = dtype_info(type);
  return static_cast<size_t>(n / info.block_elems * info.block_bytes);
}

}  // namespace flashmem
