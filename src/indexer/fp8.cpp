#include "indexer/fp8.h"

#include <bit>
#include <cmath>
#include <cstring>
#include <limits>

#include "util/error.h"

namespace flashmem {
namespace {

constexpr int kExpBias = 7;
constexpr int kMantBits = 3;
constexpr int kMinNormalExp = 1 - kExpBias;  // -6: exponent of the smallest normal, 2^-6

std::array<float, 256> build_table() {
  std::array<float, 256> table{};
  for (int code = 0; code < 256; ++code) {
    const int exp_field = (code >> kMantBits) & 0xF;
    const int mant = code & 0x7;
    float magnitude;
    if ((code & 0x7F) == kFp8NaN) {
      magnitude = std::numeric_limits<float>::quiet_NaN();
    } else if (exp_field == 0) {
      magnitude = std::ldexp(static_cast<float>(mant), kMinNormalExp - kMantBits);  // m · 2^-9
    } else {
      magnitude = std::ldexp(1.0f + static_cast<float>(mant) / 8.0f, exp_field - kExpBias);
    }
    table[code] = (code & 0x80) ? -magnitude : magnitude;
  }
  return table;
}

// Round-half-to-even of a non-negative value below 2^24, independent of the FP rounding mode.
float round_half_even(float x) {
  const float floor_x = std::floor(x);
  const float frac = x - floor_x;  // exact: x < 2^24
  if (frac > 0.5f) return floor_x + 1.0f;
  if (frac < 0.5f) return floor_x;
  return std::fmod(floor_x, 2.0f) == 0.0f ? floor_x : floor_x + 1.0f;
}

uint32_t f32_bits(float f) { return std::bit_cast<uint32_t>(f); }

}  // namespace

const std::array<float, 256>& fp8_e4m3_table() {
  static const std::array<float, 256> table = build_table();
  return table;
}

uint8_t f32_to_fp8_e4m3(float value) {
  if (std::isnan(value)) return kFp8NaN;
  const uint8_t sign = (f32_bits(value) >> 31) ? 0x80 : 0x00;
  const float magnitude = std::fabs(value);
  if (magnitude >= kFp8Max) return sign | 0x7E;  // saturate (also ±inf)
  // Exponent of the binade holding `magnitude`; everything below 2^-6 shares the subnormal grid.
  int exp = static_cast<int>((f32_bits(magnitude) >> 23) & 0xFF) - 127;
  if (exp < kMinNormalExp) exp = kMinNormalExp;
  // Steps of 2^(exp-3) in this binade; scaling by a power of two is exact. m lands in [8, 16]
  // for normals (16 carries into the next binade) and in [0, 8] on the subnormal grid, and in both
  // cases the code is ((exp + 7) << 3) + m - 8.
  const float steps = std::ldexp(magnitude, kMantBits - exp);
  const int m = static_cast<int>(round_half_even(steps));
  int code = ((exp + kExpBias) << kMantBits) + m - 8;
  if (code > 0x7E) code = 0x7E;  // rounded past 448 (values in [464, 448+): unreachable above)
  return static_cast<uint8_t>(sign | code);
}

CompressedKey compress_key(const float* k) {
  float amax = 0.0f;
  for (int i = 0; i < kKeyDim; ++i) {
    if (!std::isfinite(k[i])) fail("compress_key: element {} is not finite ({})", i, k[i]);
    amax = std::fmax(amax, std::fabs(k[i]));
  }
  CompressedKey out{};
  const float scale = amax / kFp8Max;
  if (scale > 0.0f) {
    for (int i = 0; i < kKeyDim; ++i) out[i] = f32_to_fp8_e4m3(k[i] / scale);
  }
  const uint32_t bits = f32_bits(scale);
  for (int b = 0; b < 4; ++b) out[kKeyDim + b] = static_cast<uint8_t>(bits >> (8 * b));
  return out;
}

float compressed_key_scale(const uint8_t* compressed) {
  uint32_t bits = 0;
  for (int b = 0; b < 4; ++b) bits |= static_cast<uint32_t>(compressed[kKeyDim + b]) << (8 * b);
  return std::bit_cast<float>(bits);
}

void decompress_key(const uint8_t* compressed, float* k) {
  const std::array<float, 256>& table = fp8_e4m3_table();
  const float scale = compressed_key_scale(compressed);
  for (int i = 0; i < kKeyDim; ++i) k[i] = table[compressed[i]] * scale;
}

}  // namespace flashmem
