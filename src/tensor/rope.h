// Rotary position embedding: the one implementation shared by the engine (model/session), the
// LM trainer (lm/) and the Memory Indexer (indexer/rope: YaRN frequencies on top of it).
//
// Numerics, the same for every caller: frequencies and the angle pos · f_i are computed in double
// and cos/sin rounded once to f32; the rotation itself is f32. So the rotation is the formula's to
// f32 precision at any position, and a position rotates bit-identically wherever it is rotated.
#pragma once
#include <cstdint>
#include <span>
#include <vector>

namespace flashmem {

// Which dims form the rotated pairs.
enum class RopeStyle {
  kAdjacent,  // (2i, 2i+1) — llama (GGUF stores Q/K rows permuted for this), the indexer
  kNeox,      // (i, i + rope_dim/2) — qwen2, GPT-NeoX
};

// f_i = base^(−2i / rope_dim) for i < rope_dim / 2. rope_dim even and >= 2, base > 0 (caller's
// contract: configs validate them).
std::vector<double> rope_frequencies(double base, int64_t rope_dim);

// YaRN frequency scaling as ggml's rope applies it (llama.cpp's rope_yarn, ext_factor 1): with
// corr(n) = rope_dim · ln(orig_ctx / (2π n)) / (2 ln base), low = max(0, ⌊corr(beta_fast)⌋) and
// high = min(rope_dim − 1, ⌈corr(beta_slow)⌉), pair i keeps f_i (extrapolation) for i <= low,
// becomes f_i / factor (interpolation) for i >= high, and mixes them linearly between:
// mix_i = 1 − clamp((i − low) / max(0.001, high − low), 0, 1), f'_i = f_i·mix_i + f_i/factor·(1 − mix_i).
// (The Memory Indexer's YaRN, indexer/rope.h, is the reference checkpoint's variant: high clamped
// to rope_dim/2 − 1.) freqs [rope_dim / 2] from rope_frequencies(base, rope_dim), scaled in place.
void yarn_scale_frequencies(std::span<double> freqs, int64_t rope_dim, double base, double factor,
                            int64_t orig_ctx, double beta_fast, double beta_slow);

// cos[i], sin[i] of pos · freqs[i] for every i < freqs.size() (angle in double, rounded once).
void rope_angles(std::span<const double> freqs, int64_t pos, float* cos, float* sin);

// Rotates dims[rope_dim] in place by the angles (cos/sin [rope_dim / 2]); inverse = true applies
// the transpose (rotation by −angle: the backward of the rotation).
void rope_rotate(float* dims, int64_t rope_dim, RopeStyle style, const float* cos, const float* sin,
                 bool inverse = false);

}  // namespace flashmem
