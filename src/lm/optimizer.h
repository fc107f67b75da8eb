// AdamW (decoupled weight decay) over the flat parameter array, the learning-rate schedule
// (linear warm-up, then cosine decay to a floor) and global-norm gradient clipping.
#pragma once
#include <cstdint>
#include <vector>

#include "lm/lm_params.h"

namespace flashmem::lm {

struct AdamWOptions {
  double lr = 3e-3;            // peak learning rate
  double min_lr_ratio = 0.1;   // cosine decays to lr · ratio (training keeps improving late)
  int64_t warmup_steps = 100;  // linear ramp from 0: Adam's early moment estimates are noisy
  int64_t total_steps = 1000;
  double beta1 = 0.9;
  double beta2 = 0.95;  // shorter second-moment memory than 0.999: steadier with few steps
  double eps = 1e-8;
  double weight_decay = 0.1;  // on matrices only; norm gains are not decayed
  double clip_norm = 1.0;     // global L2 norm of the gradient; 0 = no clipping
};

// Throws Error naming the bad field.
void validate_adamw(const AdamWOptions& o);

// Learning rate at `step` (0-based).
double lr_at(const AdamWOptions& o, int64_t step);

class AdamW {
 public:
  AdamW(const AdamWOptions& options, const LmConfig& config, const ParamLayout& layout);
  // One update with gradient `grads` [total] (scaled in place by clipping); returns the gradient
  // norm before clipping. `step` is the 0-based index of this update.
  double step(std::vector<float>& params, std::vector<float>& grads, int64_t step);

  std::vector<float>& m() { return m_; }  // [total] first moments
  std::vector<float>& v() { return v_; }  // [total] second moments
  const AdamWOptions& options() const { return options_; }

 private:
  AdamWOptions options_;
  std::vector<float> m_, v_;
  std::vector<uint8_t> decay_;  // [total] 1 where weight decay applies
};

}  // namespace flashmem::lm
