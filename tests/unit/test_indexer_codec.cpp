// Indexer building blocks: fp8 e4m3fn codec, compressed keys, Hadamard, YaRN RoPE.
#include <gtest/gtest.h>

#include <bit>
#include <cmath>
#include <limits>
#include <numbers>
#include <random>

#include "indexer/fp8.h"
#include "indexer/hadamard.h"
#include "indexer/rope.h"
#include "util/error.h"

namespace flashmem {
namespace {

// ---- fp8 -------------------------------------------------------------------------------------

// The format definition, written independently of the library: S EEEE MMM, bias 7.
double fp8_definition(uint8_t code) {
  const int e = (code >> 3) & 0xF, m = code & 7;
  const double magnitude = e == 0 ? m * std::ldexp(1.0, -9) : (1.0 + m / 8.0) * std::ldexp(1.0, e - 7);
  return (code & 0x80) ? -magnitude : magnitude;
}

TEST(Fp8, DecodeMatchesDefinitionForAllCodes) {
  for (int code = 0; code < 256; ++code) {
    const float v = fp8_e4m3_to_f32(static_cast<uint8_t>(code));
    if ((code & 0x7F) == 0x7F) {
      EXPECT_TRUE(std::isnan(v)) << code;
    } else {
      EXPECT_EQ(v, static_cast<float>(fp8_definition(static_cast<uint8_t>(code)))) << code;
    }
  }
}

TEST(Fp8, HandCheckedValues) {
  EXPECT_EQ(fp8_e4m3_to_f32(0x38), 1.0f);      // 0.0111.000: 2^(7-7)
  EXPECT_EQ(fp8_e4m3_to_f32(0x40), 2.0f);      // 0.1000.000
  EXPECT_EQ(fp8_e4m3_to_f32(0x3C), 1.5f);      // 0.0111.100
  EXPECT_EQ(fp8_e4m3_to_f32(0x7E), 448.0f);    // 0.1111.110: 1.75 · 2^8, the max
  EXPECT_EQ(fp8_e4m3_to_f32(0xFE), -448.0f);
  EXPECT_EQ(fp8_e4m3_to_f32(0x08), 0.015625f); // 2^-6, smallest normal
  EXPECT_EQ(fp8_e4m3_to_f32(0x07), 7.0f / 512);  // largest subnormal 7 · 2^-9
  EXPECT_EQ(fp8_e4m3_to_f32(0x01), 1.0f / 512);  // smallest subnormal 2^-9
  EXPECT_EQ(fp8_e4m3_to_f32(0x00), 0.0f);
  EXPECT_TRUE(std::signbit(fp8_e4m3_to_f32(0x80)));
  EXPECT_EQ(f32_to_fp8_e4m3(1.0f), 0x38);
  EXPECT_EQ(f32_to_fp8_e4m3(-2.0f), 0xC0);
  EXPECT_EQ(f32_to_fp8_e4m3(448.0f), 0x7E);
}

TEST(Fp8, EncodeInvertsDecodeExceptNaN) {
  for (int code = 0; code < 256; ++code) {
    const float v = fp8_e4m3_to_f32(static_cast<uint8_t>(code));
    if (std::isnan(v)) continue;
    EXPECT_EQ(f32_to_fp8_e4m3(v), code) << "code " << code << " value " << v;
  }
}

TEST(Fp8, RoundsToNearestEven) {
  // 1.0 (0x38) and 1.125 (0x39): the midpoint 1.0625 goes to the even mantissa 0x38,
  // the midpoint between 1.125 and 1.25 (1.1875) goes to 1.25 (0x3A, even).
  EXPECT_EQ(f32_to_fp8_e4m3(1.0625f), 0x38);
  EXPECT_EQ(f32_to_fp8_e4m3(std::nextafter(1.0625f, 2.0f)), 0x39);
  EXPECT_EQ(f32_to_fp8_e4m3(1.1875f), 0x3A);
  EXPECT_EQ(f32_to_fp8_e4m3(std::nextafter(1.1875f, 0.0f)), 0x39);
  // Subnormal grid (step 2^-9): 1.5 · 2^-9 ties to 2 · 2^-9, 0.5 · 2^-9 ties to 0.
  EXPECT_EQ(f32_to_fp8_e4m3(1.5f / 512), 0x02);
  EXPECT_EQ(f32_to_fp8_e4m3(0.5f / 512), 0x00);
  EXPECT_EQ(f32_to_fp8_e4m3(-0.5f / 512), 0x80);
  EXPECT_EQ(f32_to_fp8_e4m3(std::nextafter(0.5f / 512, 1.0f)), 0x01);
  // Largest subnormal to smallest normal: 7.5 · 2^-9 ties to 8 · 2^-9 = 0x08 (even).
  EXPECT_EQ(f32_to_fp8_e4m3(7.5f / 512), 0x08);
  // Binade carry: 15.5/8 · 2 = 3.875 is halfway between 3.75 (0x47) and 4 (0x48): even -> 0x48.
  EXPECT_EQ(f32_to_fp8_e4m3(3.875f), 0x48);
  // f32 subnormals and tiny values become (signed) zero.
  EXPECT_EQ(f32_to_fp8_e4m3(std::numeric_limits<float>::denorm_min()), 0x00);
}

TEST(Fp8, NearestForRandomValues) {
  std::mt19937 rng(7);
  std::uniform_real_distribution<float> exponent(-12.0f, 9.5f);
  for (int i = 0; i < 20000; ++i) {
    const float v = std::exp2(exponent(rng)) * (i % 2 ? -1.0f : 1.0f);
    const uint8_t code = f32_to_fp8_e4m3(v);
    const double err = std::fabs(fp8_definition(code) - v);
    for (int other = 0; other < 256; ++other) {
      if ((other & 0x7F) == 0x7F) continue;
      ASSERT_LE(err, std::fabs(fp8_definition(static_cast<uint8_t>(other)) - v)) << v;
    }
  }
}

TEST(Fp8, SaturatesAndHandlesNaN) {
  EXPECT_EQ(f32_to_fp8_e4m3(449.0f), 0x7E);
  EXPECT_EQ(f32_to_fp8_e4m3(464.0f), 0x7E);  // would round to 480 = the NaN pattern
  EXPECT_EQ(f32_to_fp8_e4m3(1e30f), 0x7E);
  EXPECT_EQ(f32_to_fp8_e4m3(-1e30f), 0xFE);
  EXPECT_EQ(f32_to_fp8_e4m3(std::numeric_limits<float>::infinity()), 0x7E);
  EXPECT_EQ(f32_to_fp8_e4m3(-std::numeric_limits<float>::infinity()), 0xFE);
  EXPECT_EQ(f32_to_fp8_e4m3(std::numeric_limits<float>::quiet_NaN()), kFp8NaN);
}

// ---- compressed key ---------------------------------------------------------------------------

TEST(CompressedKey, RoundTripWithinFp8Precision) {
  std::mt19937 rng(11);
  std::normal_distribution<float> normal(0.0f, 3.0f);
  float k[kKeyDim], back[kKeyDim];
  for (int trial = 0; trial < 50; ++trial) {
    for (float& x : k) x = normal(rng);
    const CompressedKey c = compress_key(k);
    float amax = 0;
    for (float x : k) amax = std::max(amax, std::fabs(x));
    EXPECT_EQ(compressed_key_scale(c.data()), amax / 448.0f);
    decompress_key(c.data(), back);
    for (int i = 0; i < kKeyDim; ++i) {
      // Relative step 2^-3 in a binade -> half-step error 2^-4 relative, plus the subnormal
      // floor 2^-10 · scale for small elements.
      EXPECT_LE(std::fabs(back[i] - k[i]), std::fabs(k[i]) / 16 + amax / 448.0f / 1024 * 1.001f)
          << i;
    }
  }
}

TEST(CompressedKey, LayoutAndZeroKey) {
  float k[kKeyDim] = {};
  k[3] = -448.0f;  // scale 1
  k[5] = 1.0f;
  const CompressedKey c = compress_key(k);
  EXPECT_EQ(c[3], 0xFE);
  EXPECT_EQ(c[5], 0x38);
  EXPECT_EQ(c[128], 0x00);  // 1.0f = 0x3F800000, little-endian
  EXPECT_EQ(c[131], 0x3F);
  const float zero[kKeyDim] = {};
  const CompressedKey z = compress_key(zero);
  for (uint8_t b : z) EXPECT_EQ(b, 0);
  k[7] = std::numeric_limits<float>::infinity();
  EXPECT_THROW(compress_key(k), Error);
}

// ---- Hadamard ---------------------------------------------------------------------------------

TEST(Hadamard, FastMatchesNaive) {
  std::mt19937 rng(3);
  std::normal_distribution<float> normal(0.0f, 1.0f);
  for (int trial = 0; trial < 20; ++trial) {
    float a[kHadamardDim], b[kHadamardDim];
    for (int i = 0; i < kHadamardDim; ++i) a[i] = b[i] = normal(rng);
    hadamard_128(a);
    hadamard_128_ref(b);
    for (int i = 0; i < kHadamardDim; ++i) EXPECT_NEAR(a[i], b[i], 1e-5f) << i;
  }
}

TEST(Hadamard, NaturalOrderAndInvolution) {
  // Natural (Sylvester) order: e_j maps to column j of H / sqrt(128): row 1 alternates +,-.
  float x[kHadamardDim] = {};
  x[1] = 1.0f;
  hadamard_128(x);
  const float s = 1.0f / std::sqrt(128.0f);
  for (int i = 0; i < kHadamardDim; ++i) EXPECT_FLOAT_EQ(x[i], (i % 2 ? -s : s)) << i;
  // Orthogonal and symmetric: applying it twice gives back the input.
  std::mt19937 rng(5);
  std::normal_distribution<float> normal(0.0f, 1.0f);
  float y[kHadamardDim], orig[kHadamardDim];
  for (int i = 0; i < kHadamardDim; ++i) y[i] = orig[i] = normal(rng);
  hadamard_128(y);
  hadamard_128(y);
  for (int i = 0; i < kHadamardDim; ++i) EXPECT_NEAR(y[i], orig[i], 1e-5f);
}

// ---- YaRN RoPE --------------------------------------------------------------------------------

TEST(Yarn, ReferenceCorrectionRange) {
  // corr(n) = 64 · ln(65536 / (2πn)) / (2 · ln 160000):
  //   corr(32) = 64 · ln(325.949) / 23.9659 = 15.4533 -> low  = floor = 15
  //   corr(1)  = 64 · ln(10430.4) / 23.9659 = 24.7084 -> high = ceil  = 25
  const YarnRange r = yarn_range(RopeParams{});
  EXPECT_NEAR(r.corr_fast, 15.453295, 1e-5);
  EXPECT_NEAR(r.corr_slow, 24.708424, 1e-5);
  EXPECT_EQ(r.low, 15);
  EXPECT_EQ(r.high, 25);
}

TEST(Yarn, ReferenceFrequencies) {
  const std::vector<double> f = yarn_frequencies(RopeParams{});
  ASSERT_EQ(f.size(), 32u);
  // Hand-computed from the formula (f_i = 160000^(-i/32), ramp (i - 15) / 10 on [15, 25)):
  EXPECT_EQ(f[0], 1.0);                                           // ramp 0
  EXPECT_NEAR(f[1], 0.6876560219336321, 1e-15);                   // 160000^(-1/32), ramp 0
  EXPECT_NEAR(f[15], 0.003635538583622384, 1e-17);                // ramp 0 at i = low
  EXPECT_NEAR(f[16], 0.0025 * 0.9 + 0.0025 / 16 * 0.1, 1e-17);    // f_16 = 1/400, ramp 0.1
  EXPECT_NEAR(f[20], 0.00029697777826169085, 1e-18);              // ramp 0.5
  EXPECT_NEAR(f[24], 1.25e-4 * 0.1 + 1.25e-4 / 16 * 0.9, 1e-18);  // f_24 = 1/8000, ramp 0.9
  EXPECT_NEAR(f[25], 5.372312671356501e-06, 1e-20);               // ramp 1: f_25 / 16
  EXPECT_NEAR(f[31], 5.680529036909976e-07, 1e-21);
}

TEST(Yarn, RotatesLastDimsOfAdjacentPairs) {
  const YarnRope rope(RopeParams{});
  float x[128];
  for (int i = 0; i < 128; ++i) x[i] = static_cast<float>(i + 1);
  float y[128];
  std::copy(x, x + 128, y);
  const int64_t pos = 1234;
  rope.apply(pos, y);
  for (int i = 0; i < 64; ++i) EXPECT_EQ(y[i], x[i]);  // pass-through
  for (int i = 0; i < 32; ++i) {
    const double angle = static_cast<double>(pos) * rope.frequencies()[i];
    const double c = std::cos(angle), s = std::sin(angle);
    EXPECT_NEAR(y[64 + 2 * i], x[64 + 2 * i] * c - x[65 + 2 * i] * s, 1e-3) << i;
    EXPECT_NEAR(y[65 + 2 * i], x[64 + 2 * i] * s + x[65 + 2 * i] * c, 1e-3) << i;
  }
}

TEST(Yarn, ClampsBeyondTableAndRejectsNegative) {
  RopeParams p;
  p.max_positions = 1000;
  const YarnRope rope(p);
  EXPECT_EQ(rope.table_position(999), 999);
  EXPECT_EQ(rope.table_position(5000), 999);
  const YarnRope::Angles a = rope.angles(999), b = rope.angles(123456);
  for (int i = 0; i < 32; ++i) EXPECT_EQ(a.cos[i], b.cos[i]);
  EXPECT_THROW(rope.angles(-1), Error);
  EXPECT_EQ(RopeParams{}.max_positions, 65536 * 16);
}

TEST(Yarn, ExtremeButLegalParametersStayInRange) {
  // Found by fuzz_indexer_file: a denormal beta or a base just above 1 made the correction dims
  // infinite, and converting them to int64 was undefined behaviour.
  for (const double beta : {1.807872510037101e-307, 5.10331698681e-312, 1e-300}) {
    RopeParams p;
    p.beta_fast = beta;
    const YarnRange a = yarn_range(p);
    EXPECT_GE(a.low, 0);
    EXPECT_LE(a.high, p.rope_dim / 2 - 1);
    p = RopeParams{};
    p.beta_slow = beta;
    const YarnRange b = yarn_range(p);
    EXPECT_GE(b.low, 0);
    EXPECT_LE(b.high, p.rope_dim / 2 - 1);
    EXPECT_EQ(yarn_frequencies(p).size(), 32u);
  }
  RopeParams p;
  p.base = 1.0 + 1e-15;
  const YarnRange r = yarn_range(p);
  EXPECT_GE(r.low, 0);
  EXPECT_LE(r.high, 31);
  for (const double f : yarn_frequencies(p)) EXPECT_TRUE(std::isfinite(f));
}

TEST(Yarn, RejectsBadParameters) {
  RopeParams p;
  p.base = 1.0;
  EXPECT_THROW(yarn_range(p), Error);
  p = RopeParams{};
  p.rope_dim = 63;
  EXPECT_THROW(yarn_range(p), Error);
  p = RopeParams{};
  p.beta_slow = 0;
  EXPECT_THROW(yarn_range(p), Error);
  p = RopeParams{};
  p.factor = 0.5;
  EXPECT_THROW(yarn_range(p), Error);
}

}  // namespace
}  // namespace flashmem
