#include "tensor/rope.h"

#include <algorithm>
#include <cmath>
#include <numbers>

namespace flashmem {

std::vector<double> rope_frequencies(double base, int64_t rope_dim) {
  std::vector<double> freqs(static_cast<size_t>(rope_dim / 2));
  for (size_t i = 0; i < freqs.size(); ++i)
    freqs[i] = std::pow(base, -2.0 * static_cast<double>(i) / static_cast<double>(rope_dim));
  return freqs;
}

void yarn_scale_frequencies(std::span<double> freqs, int64_t rope_dim, double base, double factor,
                            int64_t orig_ctx, double beta_fast, double beta_slow) {
  const auto corr = [&](double n_rotations) {
    return static_cast<double>(rope_dim) *
           std::log(static_cast<double>(orig_ctx) / (n_rotations * 2.0 * std::numbers::pi)) /
           (2.0 * std::log(base));
  };
  const double low = std::max(0.0, std::floor(corr(beta_fast)));
  const double high = std::min(static_cast<double>(rope_dim - 1), std::ceil(corr(beta_slow)));
  // 0.001: ggml's guard against a zero-width ramp.
  const double width = std::max(0.001, high - low);
  for (size_t i = 0; i < freqs.size(); ++i) {
    const double mix = 1.0 - std::clamp((static_cast<double>(i) - low) / width, 0.0, 1.0);
    freqs[i] = freqs[i] * mix + freqs[i] / factor * (1.0 - mix);
  }
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
