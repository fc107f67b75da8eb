// float8 e4m3fn (the element type of the indexer's compressed keys) and the 132-byte compressed
// key built on it (REFERENCE.md "Compressed key format").
//
// e4m3fn: 1 sign bit, 4 exponent bits (bias 7), 3 mantissa bits. Exponent 0 holds subnormals
// (m · 2^-9); S.1111.111 is the only NaN; there are no infinities; the largest finite value is
// S.1111.110 = 1.75 · 2^8 = 448. Examples: 0x38 = 1.0, 0x40 = 2.0, 0x08 = 2^-6, 0x01 = 2^-9.
#pragma once
#include <array>
#include <cstdint>

namespace flashmem {

constexpr float kFp8Max = 448.0f;      // largest finite e4m3fn magnitude
constexpr uint8_t kFp8NaN = 0x7F;      // canonical NaN code (0xFF is the negative NaN)

// The 256 decoded values, indexed by code (NaN codes decode to NaN).
const std::array<float, 256>& fp8_e4m3_table();

inline float fp8_e4m3_to_f32(uint8_t code) { return fp8_e4m3_table()[code]; }

// f32 -> e4m3fn, round-to-nearest-even. Magnitudes above 448 (and ±inf) saturate to ±448 instead
// of becoming NaN: a saturated key element is off by at most a rounding step, a NaN would poison
// every score of the chunk. NaN -> 0x7F. The sign of zero is kept (-0.0 -> 0x80).
uint8_t f32_to_fp8_e4m3(float value);

// ---- compressed key ---------------------------------------------------------------------------
constexpr int kKeyDim = 128;                 // indexer head dim
constexpr int kCompressedKeyBytes = 132;     // 128 fp8 codes + one little-endian f32 scale

using CompressedKey = std::array<uint8_t, kCompressedKeyBytes>;

// k[128] -> 128 fp8 codes of k / scale and the scale, scale = amax(|k|) / 448 so that the largest
// element lands on the format's largest finite value (per-chunk absmax scaling, as the reference
// quantizer does; the full 448 range keeps the relative step <= 2^-4 for elements near amax).
// An all-zero key gets scale 0 and zero codes. Throws Error if k holds NaN or inf.
CompressedKey compress_key(const float* k);

// k[128] = fp8 value × scale.
void decompress_key(const uint8_t* compressed, float* k);

// The scale stored in bytes [128, 132) (little-endian on every host).
float compressed_key_scale(const uint8_t* compressed);

}  // namespace flashmem
