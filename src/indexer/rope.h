// YaRN rotary position embedding of the indexer (REFERENCE.md "Scoring formula"): rope_dim = 64
// rotated dims at the END of each 128-dim head, adjacent pairs (2i, 2i+1), i < 32; dims [0, 64)
// pass through. Frequencies (no mscale / magnitude correction):
//   corr(n)  = rope_dim · ln(orig_ctx / (n · 2π)) / (2 · ln base)
//   low      = max(floor(corr(beta_fast)), 0),  high = min(ceil(corr(beta_slow)), rope_dim/2 − 1)
//   ramp_i   = 0 if i < low, 1 if i >= high, else (i − low) / max(high − low, 1)
//   f_i      = base^(−2i / rope_dim),   f'_i = f_i · (1 − ramp_i) + (f_i / factor) · ramp_i
//   angle    = pos · f'_i;   (x0, x1) -> (x0 cos − x1 sin, x0 sin + x1 cos)
// With the reference constants (base 160000, factor 16, orig_ctx 65536, beta 32 / 1):
// corr(32) = 15.45 -> low = 15, corr(1) = 24.71 -> high = 25.
//
// Numerics: f'_i and the angle pos · f'_i are computed in double and cos/sin rounded once to f32,
// so the rotation is the formula's to f32 precision at every position. (The reference release
// builds an f32 table — f32 f'_i, f32 product — whose angle rounding grows like pos · 2^-24 rad:
// ~0.004 rad at 64K, ~0.06 rad at 1M, a 1e-3 .. 1e-2 relative change of the logits. We do not
// reproduce that error; scores agree with the formula to ~1e-6 at any position.) The rotation
// itself is f32, as in the reference. The reference clamps positions beyond its table to the last
// entry; we keep that semantics without materializing a table (32 cos/sin per call are cheaper
// than a 256 MiB table): positions >= max_positions use max_positions − 1. Our files record the
// table length as flashmem-indexer.rope_max_positions, default orig_ctx · factor (= 1,048,576:
// the context YaRN scaling is configured for).
#pragma once
#include <array>
#include <cstdint>
#include <vector>

namespace flashmem {

struct RopeParams {
  int64_t head_dim = 128;
  int64_t rope_dim = 64;            // rotated dims, the last rope_dim of the head
  double base = 160000.0;
  double factor = 16.0;             // YaRN scaling factor
  int64_t orig_ctx = 65536;         // YaRN original context length
  double beta_fast = 32.0;
  double beta_slow = 1.0;
  int64_t max_positions = 65536 * 16;  // table length; larger positions are clamped
};

struct YarnRange {
  double corr_fast = 0, corr_slow = 0;  // corr(beta_fast), corr(beta_slow)
  int64_t low = 0, high = 0;
};

// The correction range above. Throws Error on parameters the formula cannot take (base <= 1,
// factor < 1, betas <= 0, orig_ctx <= 0, odd rope_dim, rope_dim > head_dim, max_positions < 1).
YarnRange yarn_range(const RopeParams& params);
// f'_i for i < rope_dim / 2.
std::vector<double> yarn_frequencies(const RopeParams& params);

class YarnRope {
 public:
  static constexpr int kMaxPairs = 64;  // rope_dim <= 128

  explicit YarnRope(const RopeParams& params);

  const RopeParams& params() const { return params_; }
  const std::vector<double>& frequencies() const { return freqs_; }  // [rope_dim / 2]

  // Clamps pos into [0, max_positions); throws Error for a negative position.
  int64_t table_position(int64_t pos) const;

  struct Angles {
    std::array<float, kMaxPairs> cos{}, sin{};  // [rope_dim / 2]
  };
  Angles angles(int64_t pos) const;

  // Rotates the last rope_dim dims of head[head_dim] in place.
  void apply(const Angles& angles, float* head) const;
  void apply(int64_t pos, float* head) const { apply(angles(pos), head); }

 private:
  RopeParams params_;
  std::vector<double> freqs_;  // [rope_dim / 2] f'_i
};

}  // namespace flashmem
