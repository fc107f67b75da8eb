#include "tensor/rope.h"

#include <cmath>

namespace flashmem {

std::vector<double> rope_frequencies(double base, int64_t rope_dim) {
  std::vector<double> freqs(static_cast<size_t>(rope_dim / 2));
  for (size_t i = 0; i < freqs.size(); ++i)
    freqs[i] = std::pow(base, -2.0 * static_cast<double>(i) / static_cast<double>(rope_dim));
  return freqs;
}

void rope_angles(std::span<const double> freqs, int64_t pos, float* cos, float* sin) {
  const auto position = static_cast<double>(pos);
  for (size_t i = 0; i < freqs.size(); ++i) {
    const double angle = position * freqs[i];
    cos[i] = static_cast<float>(std::cos(angle));
    sin[i] = static_cast<float>(std::sin(angle));
  }
}

void rope_rotate(float* dims, int64_t rope_dim, RopeStyle style, const float* cos, const float* sin,
                 bool inverse) {
  const int64_t half = rope_dim / 2;
  for (int64_t i = 0; i < half; ++i) {
    const int64_t a = style == RopeStyle::kAdjacent ? 2 * i : i;
    const int64_t b = style == RopeStyle::kAdjacent ? 2 * i + 1 : i + half;
    const float c = cos[i], s = inverse ? -sin[i] : sin[i];
    const float x0 = dims[a], x1 = dims[b];
    dims[a] = x0 * c - x1 * s;
    dims[b] = x0 * s + x1 * c;
  }
}

}  // namespace flashmem
