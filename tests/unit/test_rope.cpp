// tensor/rope: the one RoPE of the engine, the LM trainer and the indexer.
#include <gtest/gtest.h>

#include <cmath>
#include <random>
#include <vector>

#include "tensor/rope.h"

namespace flashmem {
namespace {

std::vector<float> random_head(int64_t n, uint32_t seed) {
  std::mt19937 rng(seed);
  std::uniform_real_distribution<float> u(-2.0f, 2.0f);
  std::vector<float> v(static_cast<size_t>(n));
  for (float& x : v) x = u(rng);
  return v;
}

TEST(Rope, FrequenciesAreBasePowers) {
  const std::vector<double> f = rope_frequencies(10000.0, 64);
  ASSERT_EQ(f.size(), 32u);
  EXPECT_EQ(f[0], 1.0);
  EXPECT_NEAR(f[16], std::pow(10000.0, -0.5), 1e-15);
}

// The rotation is the formula's to f32 precision: compare with a double-precision rotation.
TEST(Rope, RotationMatchesTheFormulaInBothStyles) {
  const int64_t d = 64;
  const std::vector<double> f = rope_frequencies(500000.0, d);
  std::vector<float> cos(d / 2), sin(d / 2);
  for (const int64_t pos : {int64_t{0}, int64_t{1}, int64_t{777}, int64_t{1} << 20}) {
    rope_angles(f, pos, cos.data(), sin.data());
    for (const RopeStyle style : {RopeStyle::kAdjacent, RopeStyle::kNeox}) {
      const std::vector<float> x = random_head(d, 7);
      std::vector<float> y = x;
      rope_rotate(y.data(), d, style, cos.data(), sin.data());
      for (int64_t i = 0; i < d / 2; ++i) {
        const int64_t a = style == RopeStyle::kAdjacent ? 2 * i : i;
        const int64_t b = style == RopeStyle::kAdjacent ? 2 * i + 1 : i + d / 2;
        const double angle = static_cast<double>(pos) * f[static_cast<size_t>(i)];
        const double ya = x[a] * std::cos(angle) - x[b] * std::sin(angle);
        const double yb = x[a] * std::sin(angle) + x[b] * std::cos(angle);
        EXPECT_NEAR(y[a], ya, 2e-6 * 4) << "pos " << pos << " pair " << i;
        EXPECT_NEAR(y[b], yb, 2e-6 * 4) << "pos " << pos << " pair " << i;
      }
    }
  }
}

// inverse = true is the transpose: rotating forth and back returns the input to rounding.
TEST(Rope, InverseUndoesTheRotation) {
  const int64_t d = 128;
  const std::vector<double> f = rope_frequencies(10000.0, d);
  std::vector<float> cos(d / 2), sin(d / 2);
  rope_angles(f, 12345, cos.data(), sin.data());
  const std::vector<float> x = random_head(d, 3);
  std::vector<float> y = x;
  rope_rotate(y.data(), d, RopeStyle::kAdjacent, cos.data(), sin.data());
  EXPECT_NE(y, x);
  rope_rotate(y.data(), d, RopeStyle::kAdjacent, cos.data(), sin.data(), /*inverse=*/true);
  for (int64_t i = 0; i < d; ++i) EXPECT_NEAR(y[i], x[i], 1e-5f);
}

}  // namespace
}  // namespace flashmem
