#include "optim/adamw.h"

#include <algorithm>
#include <cmath>

#include "util/error.h"

namespace flashmem {

void validate_schedule(const LrSchedule& s) {
  if (!(s.peak_lr > 0 && s.peak_lr < 1)) fail("learning rate {} must be in (0, 1)", s.peak_lr);
  if (!(s.min_lr_ratio >= 0 && s.min_lr_ratio <= 1)) fail("min lr ratio {} must be in [0, 1]", s.min_lr_ratio);
  if (s.warmup_steps < 0) fail("warm-up steps {} must be >= 0", s.warmup_steps);
  if (s.total_steps < 1) fail("steps {} must be >= 1", s.total_steps);
}

double lr_at(const LrSchedule& s, int64_t step) {
  if (step < s.warmup_steps)
    return s.peak_lr * static_cast<double>(step + 1) / static_cast<double>(s.warmup_steps);
  const int64_t span = std::max<int64_t>(1, s.total_steps - s.warmup_steps);
  const double progress = std::min(1.0, static_cast<double>(step - s.warmup_steps) / static_cast<double>(span));
  const double cosine = 0.5 * (1.0 + std::cos(M_PI * progress));
  return s.peak_lr * (s.min_lr_ratio + (1.0 - s.min_lr_ratio) * cosine);
}

void validate_adamw(const AdamWOptions& o) {
  if (!(o.beta1 >= 0 && o.beta1 < 1) || !(o.beta2 >= 0 && o.beta2 < 1)) fail("Adam betas must be in [0, 1)");
  if (!(o.eps > 0)) fail("Adam eps must be > 0");
  // 10: far above any useful decoupled decay (lr · wd is the per-step shrink); larger is a typo.
  if (!(o.weight_decay >= 0 && o.weight_decay < 10)) fail("weight decay {} must be in [0, 10)", o.weight_decay);
  if (!(o.clip_norm >= 0)) fail("clip norm {} must be >= 0", o.clip_norm);
}

AdamW::AdamW(const AdamWOptions& options, std::vector<uint8_t> decay_mask)
    : options_(options), m_(decay_mask.size(), 0.0f), v_(decay_mask.size(), 0.0f), decay_(std::move(decay_mask)) {
  validate_adamw(options_);
}

double AdamW::step(std::vector<float>& params, std::vector<float>& grads, double lr, int64_t update_index) {
  if (params.size() != decay_.size() || grads.size() != decay_.size())
    fail("AdamW: {} parameters and {} gradients for an optimizer of {}", params.size(), grads.size(), decay_.size());
  double sq = 0;
  for (const float g : grads) sq += static_cast<double>(g) * g;
  const double norm = std::sqrt(sq);
  if (!std::isfinite(norm))
    fail("gradient is not finite at update {} (diverged; lower the learning rate)", update_index);
  const double clip = options_.clip_norm > 0 && norm > options_.clip_norm ? options_.clip_norm / norm : 1.0;
  const double b1 = options_.beta1, b2 = options_.beta2;
  const double c1 = 1.0 - std::pow(b1, static_cast<double>(update_index + 1));
  const double c2 = 1.0 - std::pow(b2, static_cast<double>(update_index + 1));
  for (size_t i = 0; i < params.size(); ++i) {
    const double g = grads[i] * clip;
    grads[i] = static_cast<float>(g);
    m_[i] = static_cast<float>(b1 * m_[i] + (1 - b1) * g);
    v_[i] = static_cast<float>(b2 * v_[i] + (1 - b2) * g * g);
    const double update = (m_[i] / c1) / (std::sqrt(v_[i] / c2) + options_.eps);
    const double decay = decay_[i] ? options_.weight_decay * params[i] : 0.0;
    params[i] = static_cast<float>(params[i] - lr * (update + decay));
  }
  return norm;
}

}  // namespace flashmem
