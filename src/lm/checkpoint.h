// Training checkpoints: model shape, step, seed, parameters and AdamW moments in one GGUF
// container (`general.architecture = "flashmem-lm-checkpoint"`), written atomically, so an
// interrupted run resumes from the last complete checkpoint.
//
// Version 2 carries lm.file_checksum, XXH3-64 over every byte of the file (gguf/gguf_checksum.h):
// a damaged checkpoint is an error, never a resume (a flipped bit in a moment or in lm.step
// trains on silently and loses accuracy). Version 1 checkpoints (no checksum) are refused: they
// cannot be verified, and a training run can always be restarted.
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
std::vector<uint8_t> checkpoint_to_bytes(const Checkpoint& ck);
// Verifies the whole-file checksum, then every field (architecture, config bounds, tensor sizes
// equal to the layout, finite numbers); throws Error naming the file and the field.
Checkpoint load_checkpoint(const std::string& path);
Checkpoint checkpoint_from_bytes(const uint8_t* data, size_t size, const std::string& name);

}  // namespace flashmem::lm
