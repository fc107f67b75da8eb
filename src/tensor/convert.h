// Scalar conversions between f32 and the 16-bit float formats (bit patterns as uint16_t).
#pragma once
#include <cstdint>
#include <cstring>

namespace flashmem {

// IEEE binary16 -> f32, exact (handles subnormals, inf, NaN).
float fp16_to_f32(uint16_t h);
// f32 -> IEEE binary16 with round-to-nearest-even; overflow -> inf, NaN stays NaN.
uint16_t f32_to_fp16(float f);

inline float bf16_to_f32(uint16_t h) {
  uint32_t u = static_cast<uint32_t>(h) << 16;
  float f;
  std::memcpy(&f, &u, 4);
  return f;
}
// f32 -> bfloat16 with round-to-nearest-even; NaN stays a quiet NaN.
inline uint16_t f32_to_bf16(float f) {
  uint32_t u;
  std::memcpy(&u, &f, 4);
  if ((u & 0x7fffffffu) > 0x7f800000u) return static_cast<uint16_t>((u >> 16) | 0x40);
  u += 0x7fffu + ((u >> 16) & 1u);
  return static_cast<uint16_t>(u >> 16);
}
// Rounds an f32 to the nearest bf16 value and returns it as f32.
inline float round_to_bf16(float f) { return bf16_to_f32(f32_to_bf16(f)); }

}  // namespace flashmem
