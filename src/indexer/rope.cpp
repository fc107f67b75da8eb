#include "indexer/rope.h"

#include <algorithm>
#include <cmath>
#include <numbers>

#include "tensor/rope.h"
#include "util/error.h"

namespace flashmem {
namespace {

void validate(const RopeParams& p) {
  if (p.rope_dim <= 0 || p.rope_dim % 2 != 0 || p.rope_dim > p.head_dim ||
      p.rope_dim / 2 > YarnRope::kMaxPairs)
    fail("rope_dim {} must be even, positive and at most head_dim {}", p.rope_dim, p.head_dim);
  if (!(p.base > 1.0) || !std::isfinite(p.base)) fail("rope_base {} must be finite and > 1", p.base);
  if (!(p.factor >= 1.0) || !std::isfinite(p.factor))
    fail("yarn_factor {} must be finite and >= 1", p.factor);
  if (p.orig_ctx <= 0) fail("yarn_orig_ctx {} must be positive", p.orig_ctx);
  if (!(p.beta_fast > 0.0) || !(p.beta_slow > 0.0) || !std::isfinite(p.beta_fast) ||
      !std::isfinite(p.beta_slow))
    fail("yarn betas ({}, {}) must be finite and positive", p.beta_fast, p.beta_slow);
  // Positions are exact in f32 below 2^24 (the trainer may compute angles in f32 on GPUs).
  if (p.max_positions < 1 || p.max_positions > (int64_t{1} << 24))
    fail("rope_max_positions {} must be in [1, 2^24]", p.max_positions);
}

double correction_dim(const RopeParams& p, double n_rotations) {
  return static_cast<double>(p.rope_dim) *
         std::log(static_cast<double>(p.orig_ctx) / (n_rotations * 2.0 * std::numbers::pi)) /
         (2.0 * std::log(p.base));
}

}  // namespace

YarnRange yarn_range(const RopeParams& p) {
  validate(p);
  YarnRange r;
  r.corr_fast = correction_dim(p, p.beta_fast);
  r.corr_slow = correction_dim(p, p.beta_slow);
  // Legal but extreme parameters (rope_base just above 1, a beta near 0) make the correction
  // dims huge or infinite: clamp in double before converting (converting a double outside the
  // int64 range is undefined behaviour; found by fuzz_indexer_file). The result is the same as
  // with unbounded integers: every pair below low (ramp 0) or at/above high (ramp 1).
  const auto pairs = static_cast<double>(p.rope_dim / 2);
  if (std::isnan(r.corr_fast) || std::isnan(r.corr_slow))
    fail("yarn correction range is not a number (rope_base {}, betas {}, {})", p.base, p.beta_fast, p.beta_slow);
  r.low = std::max<int64_t>(static_cast<int64_t>(std::clamp(std::floor(r.corr_fast), -1.0, pairs)), 0);
  r.high = std::min<int64_t>(static_cast<int64_t>(std::clamp(std::ceil(r.corr_slow), -1.0, pairs)), p.rope_dim / 2 - 1);
  return r;
}

std::vector<double> yarn_frequencies(const RopeParams& p) {
  const YarnRange r = yarn_range(p);
  std::vector<double> freqs = rope_frequencies(p.base, p.rope_dim);  // f_i, then ramped
  for (int64_t i = 0; i < static_cast<int64_t>(freqs.size()); ++i) {
    double ramp;
    if (i < r.low) {
      ramp = 0.0;
    } else if (i >= r.high) {
      ramp = 1.0;
    } else {
      ramp = static_cast<double>(i - r.low) / static_cast<double>(std::max<int64_t>(r.high - r.low, 1));
    }
    const double f = freqs[i];
    freqs[i] = f * (1.0 - ramp) + (f / p.factor) * ramp;
  }
  return freqs;
}

YarnRope::YarnRope(const RopeParams& params) : params_(params), freqs_(yarn_frequencies(params)) {}

int64_t YarnRope::table_position(int64_t pos) const {
  if (pos < 0) fail("rope position {} is negative", pos);
  return std::min(pos, params_.max_positions - 1);
}

YarnRope::Angles YarnRope::angles(int64_t pos) const {
  Angles a;
  rope_angles(freqs_, table_position(pos), a.cos.data(), a.sin.data());
  return a;
}

void YarnRope::apply(const Angles& a, float* head) const {
  rope_rotate(head + (params_.head_dim - params_.rope_dim), params_.rope_dim, RopeStyle::kAdjacent,
              a.cos.data(), a.sin.data());
}

}  // namespace flashmem
