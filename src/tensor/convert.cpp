#include "tensor/convert.h"

namespace flashmem {
namespace {

inline uint32_t bits_of(float f) {
  uint32_t u;
  std::memcpy(&u, &f, 4);
  return u;
}

inline float float_of(uint32_t u) {
  float f;
  std::memcpy(&f, &u, 4);
  return f;
}

}  // namespace

float fp16_to_f32(uint16_t h) {
  const uint32_t sign = static_cast<uint32_t>(h & 0x8000u) << 16;
  const uint32_t exponent = (h >> 10) & 0x1fu;
  const uint32_t mantissa = h & 0x3ffu;
  if (exponent == 0x1f) return float_of(sign | 0x7f800000u | (mantissa << 13));
  if (exponent != 0) return float_of(sign | ((exponent + 112) << 23) | (mantissa << 13));
  // Subnormal (or zero): mantissa * 2^-24 is exact in f32.
  const float magnitude = static_cast<float>(mantissa) * 0x1p-24f;
  return float_of(sign | bits_of(magnitude));
}

uint16_t f32_to_fp16(float f) {
  uint32_t u = bits_of(f);
  const uint16_t sign = static_cast<uint16_t>((u >> 16) & 0x8000u);
  u &= 0x7fffffffu;
  if (u > 0x7f800000u) {
    // NaN: keep the top payload bits and force the quiet bit so the result stays a NaN.
    return static_cast<uint16_t>(sign | 0x7e00u | ((u >> 13) & 0x3ffu));
  }
  // 65520 = largest f16 (65504) + half an ulp (16): from there on round-to-nearest gives inf.
  if (u >= 0x477ff000u) return static_cast<uint16_t>(sign | 0x7c00u);
  if (u >= 0x38800000u) {  // >= 2^-14: normal f16
    uint32_t h = (u >> 13) - (112u << 10);
    const uint32_t rest = u & 0x1fffu;
    if (rest > 0x1000u || (rest == 0x1000u && (h & 1u))) ++h;  // carries into the exponent
    return static_cast<uint16_t>(sign | h);
  }
  // Subnormal f16: result = value / 2^-24 rounded to nearest even. Below 2^-25 (biased f32
  // exponent 102) everything rounds to zero, 2^-25 itself is a tie that goes to even zero.
  const uint32_t exponent = u >> 23;
  if (exponent < 102) return sign;
  const uint32_t mantissa = (u & 0x7fffffu) | 0x800000u;
  const uint32_t shift = 126 - exponent;  // 14..24
  uint32_t h = mantissa >> shift;
  const uint32_t rest = mantissa & ((1u << shift) - 1);
  const uint32_t half = 1u << (shift - 1);
  if (rest > half || (rest == half && (h & 1u))) ++h;
  return static_cast<uint16_t>(sign | h);
}

}  // namespace flashmem
