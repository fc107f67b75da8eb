#include "lm/optimizer.h"

#include <algorithm>

namespace flashmem::lm {

void validate_optimizer(const OptimizerOptions& o) {
  validate_schedule(o.schedule);
  validate_adamw(o.adamw);
}

std::vector<uint8_t> decay_mask(const LmConfig& config, const ParamLayout& layout) {
  std::vector<uint8_t> decay(layout.total, 0);
  for (const ParamTensor& t : param_tensors(config, layout))
    if (t.rows > 1) std::fill_n(decay.begin() + static_cast<int64_t>(t.offset), t.rows * t.cols, 1);
  return decay;
}

}  // namespace flashmem::lm
