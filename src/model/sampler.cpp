#include "model/sampler.h"

#include <algorithm>
#include <cmath>

#include "util/error.h"

namespace flashmem {

int32_t argmax(std::span<const float> logits) {
  int32_t best = 0;
  for (size_t i = 1; i < logits.size(); ++i)
    if (logits[i] > logits[static_cast<size_t>(best)]) best = static_cast<int32_t>(i);
  return best;
}

void validate_sampler_options(const SamplerOptions& o) {
  if (!std::isfinite(o.temperature) || o.temperature < 0)
    fail("temperature must be a finite number >= 0, got {}", o.temperature);
  if (o.top_k < 0) fail("top-k must be >= 0, got {}", o.top_k);
  if (!std::isfinite(o.top_p) || o.top_p <= 0 || o.top_p > 1)
    fail("top-p must be in (0, 1], got {}", o.top_p);
  if (!std::isfinite(o.min_p) || o.min_p < 0 || o.min_p > 1)
    fail("min-p must be in [0, 1], got {}", o.min_p);
}

Sampler::Sampler(const SamplerOptions& options) : options_(options), rng_(options.seed) {
  validate_sampler_options(options_);
}

int32_t Sampler::sample(std::span<const float> logits) {
  if (options_.temperature == 0.0f) return argmax(logits);
  candidates_.clear();
  for (size_t i = 0; i < logits.size(); ++i)
    candidates_.emplace_back(logits[i], static_cast<int32_t>(i));
  auto by_logit = [](const auto& a, const auto& b) {
    return a.first > b.first || (a.first == b.first && a.second < b.second);
  };
  size_t keep = candidates_.size();
  if (options_.top_k > 0 && static_cast<size_t>(options_.top_k) < keep) {
    keep = static_cast<size_t>(options_.top_k);
    std::partial_sort(candidates_.begin(), candidates_.begin() + static_cast<ptrdiff_t>(keep),
                      candidates_.end(), by_logit);
  } else {
    std::sort(candidates_.begin(), candidates_.end(), by_logit);
  }
  candidates_.resize(keep);
  // Softmax at the temperature (largest first, so exp never overflows).
  const float max_logit = candidates_.front().first;
  double sum = 0;
  for (auto& [value, id] : candidates_) {
    value = std::exp((value - max_logit) / options_.temperature);
    sum += value;
  }
  for (auto& [value, id] : candidates_) value = static_cast<float>(value / sum);
  // min-p relative to the most likely token, then nucleus (top-p).
  const float p_max = candidates_.front().first;
  size_t n = 1;
  double cumulative = candidates_.front().first;
  while (n < candidates_.size() && cumulative < options_.top_p &&
         candidates_[n].first >= options_.min_p * p_max) {
    cumulative += candidates_[n].first;
    ++n;
  }
  candidates_.resize(n);
  std::uniform_real_distribution<double> uniform(0.0, cumulative);
  double r = uniform(rng_);
  for (const auto& [p, id] : candidates_) {
    r -= p;
    if (r <= 0) return id;
  }
  return candidates_.back().second;
}

}  // namespace flashmem
