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
  Q4_1 = 3,
  Q5_0 = 6,
  Q5_1 = 7,
  Q8_0 = 8,
  Q2_K = 10,
  Q3_K = 11,
  Q4_K = 12,
  Q5_K = 13,
  Q6_K = 14,
  IQ4_NL = 20,
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

// The layouts below are ggml's (ggml-common.h), so blocks can be read straight from a file.
// In every one, element j of a 32-element block is the low nibble of qs[j] (j < 16) or the high
// nibble of qs[j - 16]; the 5-bit types add bit j of qh as the nibble's fifth bit.

// Q4_1 block: w = d * q + m, q the 4-bit nibble.
struct BlockQ4_1 {
  uint16_t d;  // fp16 scale
  uint16_t m;  // fp16 offset (the block minimum)
  uint8_t qs[kQ4Block / 2];
};
static_assert(sizeof(BlockQ4_1) == 20);

// Q5_0 block: w = d * (q - 16), q = nibble | bit j of qh << 4.
struct BlockQ5_0 {
  uint16_t d;     // fp16 scale
  uint8_t qh[4];  // bit j: fifth bit of element j (little-endian uint32)
  uint8_t qs[kQ4Block / 2];
};
static_assert(sizeof(BlockQ5_0) == 22);

// Q5_1 block: w = d * q + m, q as in Q5_0.
struct BlockQ5_1 {
  uint16_t d;  // fp16 scale
  uint16_t m;  // fp16 offset
  uint8_t qh[4];
  uint8_t qs[kQ4Block / 2];
};
static_assert(sizeof(BlockQ5_1) == 24);

// IQ4_NL block: w = d * kIq4nlValues[nibble], a fixed non-linear 16-entry codebook.
struct BlockIQ4_NL {
  uint16_t d;  // fp16 scale
  uint8_t qs[kQ4Block / 2];
};
static_assert(sizeof(BlockIQ4_NL) == 18);
inline constexpr int8_t kIq4nlValues[16] = {-127, -104, -83, -65, -49, -35, -22, -10,
                                           1,    13,   25,  38,  53,  69,  89,  113};

// K-quants: 256-element super-blocks with an fp16 scale (and min) refined by 16 (Q2_K, Q3_K,
// Q6_K) or 8 (Q4_K, Q5_K) small per-sub-block scales. In Q2_K/Q3_K each 128-element half of a
// super-block reads 32 bytes of qs four times, 2 bits each (shift 0, 2, 4, 6): element
// 128h + 32s + l is bits 2s..2s+1 of qs[32h + l]. Sub-block (16 elements) g uses scale g.
constexpr int kQKBlock = 256;

// Q2_K: w = d * (scales[g] & 15) * q - dmin * (scales[g] >> 4), q the 2-bit value.
struct BlockQ2_K {
  uint8_t scales[kQKBlock / 16];  // 4-bit scale (low) and 4-bit min (high) per 16 elements
  uint8_t qs[kQKBlock / 4];       // 2-bit values
  uint16_t d;                     // fp16 super-block scale of the scales
  uint16_t dmin;                  // fp16 super-block scale of the mins
};
static_assert(sizeof(BlockQ2_K) == 84);

// Q3_K: w = d * (s_g - 32) * (q - 4 * !h), q the 2-bit value, h bit (4h' + s) of hmask[l] for
// element 128h' + 32s + l. The 16 6-bit scales s_g: low 4 bits in scales[g] (g < 8) or
// scales[g - 8] >> 4, high 2 bits are bits 2(g/4)..+1 of scales[8 + g % 4].
struct BlockQ3_K {
  uint8_t hmask[kQKBlock / 8];  // high bits, inverted sense: set means no -4 offset
  uint8_t qs[kQKBlock / 4];     // low 2 bits
  uint8_t scales[12];           // 16 6-bit scales, biased by 32
  uint16_t d;                   // fp16 super-block scale
};
static_assert(sizeof(BlockQ3_K) == 110);

// Q4_K: sub-blocks of 32; w = d * sc_s * q - dmin * m_s, q the nibble of element
// 64c + 32k + l = (qs[32c + l] >> 4k) & 15, s = 2c + k. The 8 6-bit (sc, m) pairs are packed in
// 12 bytes: s < 4: sc = scales[s] & 63, m = scales[s + 4] & 63; s >= 4: sc = (scales[s + 4] & 15)
// | (scales[s - 4] >> 6) << 4, m = (scales[s + 4] >> 4) | (scales[s] >> 6) << 4.
struct BlockQ4_K {
  uint16_t d;                    // fp16 super-block scale of the scales
  uint16_t dmin;                 // fp16 super-block scale of the mins
  uint8_t scales[12];            // 8 packed 6-bit (scale, min) pairs
  uint8_t qs[kQKBlock / 2];      // nibbles
};
static_assert(sizeof(BlockQ4_K) == 144);

// Q5_K: Q4_K plus a fifth bit: bit s of qh[l] for element 32s + l.
struct BlockQ5_K {
  uint16_t d;
  uint16_t dmin;
  uint8_t scales[12];
  uint8_t qh[kQKBlock / 8];
  uint8_t qs[kQKBlock / 2];
};
static_assert(sizeof(BlockQ5_K) == 176);

// Q6_K: w = d * scales[g] * (q - 32), q 6 bits. Element 128h + 32k + l takes its low 4 bits from
// ql[64h + l + 32(k & 1)] (low nibble for k < 2, high for k >= 2) and its high 2 bits from bits
// 2k..2k+1 of qh[32h + l].
struct BlockQ6_K {
  uint8_t ql[kQKBlock / 2];      // low 4 bits
  uint8_t qh[kQKBlock / 4];      // high 2 bits
  int8_t scales[kQKBlock / 16];  // one signed scale per 16 elements
  uint16_t d;                    // fp16 super-block scale
};
static_assert(sizeof(BlockQ6_K) == 210);

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
