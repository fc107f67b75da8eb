// train-lm's optimizer: its hyper-parameters for the shared AdamW and schedule (optim/adamw.h)
// and which parameters weight decay applies to.
#pragma once
#include <cstdint>
#include <vector>

#include "lm/lm_params.h"
#include "optim/adamw.h"

namespace flashmem::lm {

struct OptimizerOptions {
  LrSchedule schedule = {
      .peak_lr = 3e-3,
      .min_lr_ratio = 0.1,   // cosine decays to lr · ratio (training keeps improving late)
      .warmup_steps = 100,   // linear ramp from 0: Adam's early moment estimates are noisy
      .total_steps = 1000,
  };
  AdamWOptions adamw = {
      .beta1 = 0.9,
      .beta2 = 0.95,         // shorter second-moment memory than 0.999: steadier with few steps
      .eps = 1e-8,
      .weight_decay = 0.1,   // on matrices only (decay_mask); norm gains are not decayed
      .clip_norm = 1.0,      // global L2 norm of the gradient; 0 = no clipping
  };
};

// Throws Error naming the bad field.
void validate_optimizer(const OptimizerOptions& o);

// [layout.total] 1 on the entries of matrices (rows > 1), 0 on norm gains.
std::vector<uint8_t> decay_mask(const LmConfig& config, const ParamLayout& layout);

}  // namespace flashmem::lm
