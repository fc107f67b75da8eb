// Token sampling: greedy, or temperature with top-k, top-p and min-p filters, seeded.
#pragma once
#include <cstdint>
#include <random>
#include <span>
#include <vector>

namespace flashmem {

struct SamplerOptions {
  float temperature = 0.0f;  // 0 = greedy (argmax)
  int32_t top_k = 40;        // keep the k most likely (0 = all)
  float top_p = 0.95f;       // keep the smallest set with cumulative probability >= p (1 = all)
  float min_p = 0.05f;       // drop tokens with p < min_p * p_max (0 = off)
  uint64_t seed = 0;
};

// Validates options (Error on negative/non-finite values or p outside [0, 1]).
void validate_sampler_options(const SamplerOptions& options);

class Sampler {
 public:
  explicit Sampler(const SamplerOptions& options);
  // Picks a token from logits [n_vocab]. Deterministic for a given seed and call sequence.
  int32_t sample(std::span<const float> logits);

 private:
  SamplerOptions options_;
  std::mt19937_64 rng_;
  std::vector<std::pair<float, int32_t>> candidates_;  // [n_vocab] (logit or prob, id)
};

// Index of the largest logit (lowest index on ties).
int32_t argmax(std::span<const float> logits);

}  // namespace flashmem
