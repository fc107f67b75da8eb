// A train-lm checkpoint for the file-format tests: any config, parameters and Adam moments filled
// with small deterministic patterns (periods 17, 5 and 3, so neighbouring entries differ).
#pragma once
#include <cstdint>

#include "lm/checkpoint.h"
#include "lm/lm_params.h"

namespace flashmem::test {

inline lm::Checkpoint patterned_checkpoint(const lm::LmConfig& config, int64_t step, uint64_t seed) {
  lm::Checkpoint ck;
  ck.config = config;
  ck.step = step;
  ck.seed = seed;
  const lm::ParamLayout l = lm::make_layout(config);
  for (size_t i = 0; i < l.total; ++i) {
    ck.params.push_back(0.01f * static_cast<float>(i % 17) - 0.05f);  // [l.total]
    ck.adam_m.push_back(1e-3f * static_cast<float>(i % 5));           // [l.total]
    ck.adam_v.push_back(1e-6f * static_cast<float>(i % 3));           // [l.total]
  }
  return ck;
}

}  // namespace flashmem::test
