// AdamW (decoupled weight decay) over a flat parameter array, the learning-rate schedule (linear
// warm-up, then cosine decay to a floor) and global-norm gradient clipping: the one optimizer of
// both trainers (train-lm: lm/optimizer.h; train-indexer: train/trainer.cpp). The fields carry no
// defaults: each trainer sets its own hyper-parameters and says why there.
#pragma once
#include <cstdint>
#include <vector>

namespace flashmem {

struct LrSchedule {
  double peak_lr = 0;         // reached at the end of the warm-up
  double min_lr_ratio = 0;    // the cosine decays to peak_lr · min_lr_ratio
  int64_t warmup_steps = 0;   // linear ramp from peak_lr / warmup_steps; 0 = none
  int64_t total_steps = 1;    // the cosine ends here (and stays at its floor after)
};

// Throws Error naming the bad field.
void validate_schedule(const LrSchedule& s);
// Learning rate at `step` (0-based).
double lr_at(const LrSchedule& s, int64_t step);

struct AdamWOptions {
  double beta1 = 0, beta2 = 0;  // first- and second-moment decay
  double eps = 0;               // added to the second moment's square root
  double weight_decay = 0;      // decoupled, applied where the decay mask is 1
  double clip_norm = 0;         // global L2 norm of the gradient; 0 = no clipping
};

// Throws Error naming the bad field.
void validate_adamw(const AdamWOptions& o);

class AdamW {
 public:
  // `decay_mask` [n_params]: 1 where weight decay applies. Throws Error on invalid options.
  AdamW(const AdamWOptions& options, std::vector<uint8_t> decay_mask);

  // One update at learning rate `lr`; `update_index` (0-based) is the number of updates made
  // before this one (Adam's bias correction). `grads` [n_params] is scaled in place by the
  // clipping. Returns the gradient's global L2 norm before clipping (summed in double); Error
  // when it is not finite (the parameters are then left as they were).
  double step(std::vector<float>& params, std::vector<float>& grads, double lr, int64_t update_index);

  std::vector<float>& m() { return m_; }  // [n_params] first moments
  std::vector<float>& v() { return v_; }  // [n_params] second moments
  const AdamWOptions& options() const { return options_; }

 private:
  AdamWOptions options_;
  std::vector<float> m_, v_;     // [n_params] each
  std::vector<uint8_t> decay_;   // [n_params] 1 where weight decay applies
};

}  // namespace flashmem
