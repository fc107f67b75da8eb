// Training checkpoints: model shape, step, seed, parameters and AdamW moments in one GGUF
// container (`general.architecture = "flashmem-lm-checkpoint"`), written atomically, so an
// interrupted run resumes from the last complete checkpoint.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "lm/lm_params.h"

namespace flashmem::lm {

struct Checkpoint {
  LmConfig config;
  int64_t step = 0;          // updates done
  uint64_t seed = 0;         // the run's data/initialisation seed
  double tokens_seen = 0;    // training tokens processed so far
  double seconds = 0;        // wall time spent so far (over all resumed segments)
  std::vector<float> params; // [layout.total]
  std::vector<float> adam_m; // [layout.total]
  std::vector<float> adam_v; // [layout.total]
};

void save_checkpoint(const Checkpoint& ck, const std::string& path);
// Validates every field (architecture, config bounds, tensor sizes equal to the layout, finite
// numbers); throws Error naming the file and the field.
Checkpoint load_checkpoint(const std::string& path);

}  // namespace flashmem::lm
