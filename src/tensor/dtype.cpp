#include "tensor/dtype.h"

#include <array>

namespace flashmem {
namespace {

struct Entry {
  DType type;
  DTypeInfo info;
};

constexpr std::array<Entry, 17> kTypes = {{
    {DType::F32, {"f32", 1, 4}},
    {DType::F16, {"f16", 1, 2}},
    {DType::Q4_0, {"q4_0", kQ4Block, sizeof(BlockQ4_0)}},
    {DType::Q4_1, {"q4_1", kQ4Block, sizeof(BlockQ4_1)}},
    {DType::Q5_0, {"q5_0", kQ4Block, sizeof(BlockQ5_0)}},
    {DType::Q5_1, {"q5_1", kQ4Block, sizeof(BlockQ5_1)}},
    {DType::Q8_0, {"q8_0", kQ8Block, sizeof(BlockQ8_0)}},
    {DType::Q2_K, {"q2_K", kQKBlock, sizeof(BlockQ2_K)}},
    {DType::Q3_K, {"q3_K", kQKBlock, sizeof(BlockQ3_K)}},
    {DType::Q4_K, {"q4_K", kQKBlock, sizeof(BlockQ4_K)}},
    {DType::Q5_K, {"q5_K", kQKBlock, sizeof(BlockQ5_K)}},
    {DType::Q6_K, {"q6_K", kQKBlock, sizeof(BlockQ6_K)}},
    {DType::IQ4_NL, {"iq4_nl", kQ4Block, sizeof(BlockIQ4_NL)}},
    {DType::I8, {"i8", 1, 1}},
    {DType::I16, {"i16", 1, 2}},
    {DType::I32, {"i32", 1, 4}},
    {DType::BF16, {"bf16", 1, 2}},
}};

}  // namespace

std::optional<DType> dtype_from_id(uint32_t id) {
  for (const Entry& e : kTypes)
    if (static_cast<uint32_t>(e.type) == id) return e.type;
  return std::nullopt;
}

const DTypeInfo& dtype_info(DType type) {
  for (const Entry& e : kTypes)
    if (e.type == type) return e.info;
  return kTypes[0].info;  // unreachable for valid enum values
}

std::optional<DType> dtype_from_name(std::string_view name) {
  for (const Entry& e : kTypes)
    if (e.info.name == name) return e.type;
  return std::nullopt;
}

std::optional<uint32_t> gguf_file_type(DType type) {
  switch (type) {
    case DType::F32: return 0;
    case DType::F16: return 1;
    case DType::Q4_0: return 2;
    case DType::Q4_1: return 3;
    case DType::Q8_0: return 7;
    case DType::Q5_0: return 8;
    case DType::Q5_1: return 9;
    case DType::Q2_K: return 10;
    case DType::Q3_K: return 11;  // the _S variants: every matrix of the one type
    case DType::Q4_K: return 14;
    case DType::Q5_K: return 16;
    case DType::Q6_K: return 18;
    case DType::IQ4_NL: return 25;
    case DType::BF16: return 32;
    default: return std::nullopt;
  }
}

}  // namespace flashmem
