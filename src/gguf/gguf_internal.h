// Helpers shared by the GGUF reader and writer (not part of the public interface).
#pragma once
#include <cstdint>
#include <optional>

#include "gguf/gguf.h"

namespace flashmem {

// Encoded size of one scalar of `type`; for STRING the smallest encoding (the u64 length of an
// empty string) and for ARRAY the smallest array (u32 element type + u64 count).
uint64_t gguf_value_min_bytes(GgufType type);

// Bytes of a tensor with dims `ne` (all >= 1) of `type`; nullopt if ne[0] is not a multiple of the
// block size or the element count / byte size overflows int64.
std::optional<uint64_t> gguf_tensor_bytes(DType type, const int64_t ne[kGgufMaxDims]);

}  // namespace flashmem
