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

// cos[i], sin[i] of pos · freqs[i] for every i < freqs.size() (angle in double, rounded once).
void rope_angles(std::span<const double> freqs, int64_t pos, float* cos, float* sin);

// Rotates dims[rope_dim] in place by the angles (cos/sin [rope_dim / 2]); inverse = true applies
// the transpose (rotation by −angle: the backward of the rotation).
void rope_rotate(float* dims, int64_t rope_dim, RopeStyle style, const float* cos, const float* sin,
                 bool inverse = false);

}  // namespace flashmem
