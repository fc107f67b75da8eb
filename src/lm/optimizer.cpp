#include "lm/optimizer.h"

#include <cmath>

#include "util/error.h"

namespace flashmem::lm {

void validate_adamw(const AdamWOptions& o) {
  if (!(o.lr > 0 && o.lr < 1)) fail("learning rate {} must be in (0, 1)", o.lr);
  if (!(o.min_lr_ratio >= 0 && o.min_lr_ratio <= 1)) fail("min lr ratio {} must be in [0, 1]", o.min_lr_ratio);
  if (o.warmup_steps < 0) fail("warm-up steps {} must be >= 0", o.warmup_steps);
  if (o.total_steps < 1) fail("steps {} must be >= 1", o.total_steps);
  if (!(o.beta1 >= 0 && o.beta1 < 1) || !(o.beta2 >= 0 && o.beta2 < 1)) fail("Adam betas must be in [0, 1)");
  if (!(o.eps > 0)) fail("Adam eps must be > 0");
  if (!(o.weight_decay >= 0 && o.weight_decay < 10)) fail("weight decay {} must be in [0, 10)", o.weight_decay);
  if (!(o.clip_norm >= 0)) fail("clip norm {} must be >= 0", o.clip_norm);
}

double lr_at(const AdamWOptions& o, int64_t step) {
  if (step < o.warmup_steps) return o.lr * static_cast<double>(step + 1) / static_cast<double>(o.warmup_steps);
  const int64_t span = std::max<int64_t>(1, o.total_steps - o.warmup_steps);
  const double progress = std::min(1.0, static_cast<double>(step - o.warmup_steps) / static_cast<double>(span));
  const double cosine = 0.5 * (1.0 + std::cos(M_PI * progress));
  return o.lr * (o.min_lr_ratio + (1.0 - o.min_lr_ratio) * cosine);
}

AdamW::AdamW(const AdamWOptions& options, const LmConfig& config, const ParamLayout& layout)
    : options_(options), m_(layout.total, 0.0f), v_(layout.total, 0.0f), decay_(layout.total, 0) {
  validate_adamw(options_);
  for (const ParamTensor& t : param_tensors(config, layout))
    if (t.rows > 1) std::fill_n(decay_.begin() + static_cast<int64_t>(t.offset), t.rows * t.cols, 1);
}

double AdamW::step(std::vector<float>& params, std::vector<float>& grads, int64_t step) {
  double sq = 0;
  for (const float g : grads) sq += static_cast<double>(g) * g;
  const double norm = std::sqrt(sq);
  if (!std::isfinite(norm)) fail("gradient is not finite at step {} (diverged; lower the learning rate)", step);
  const double clip = options_.clip_norm > 0 && norm > options_.clip_norm ? options_.clip_norm / norm : 1.0;
  const double lr = lr_at(options_, step);
  const double b1 = options_.beta1, b2 = options_.beta2;
  const double c1 = 1.0 - std::pow(b1, static_cast<double>(step + 1));
  const double c2 = 1.0 - std::pow(b2, static_cast<double>(step + 1));
  const auto n = params.size();
  for (size_t i = 0; i < n; ++i) {
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

}  // namespace flashmem::lm
