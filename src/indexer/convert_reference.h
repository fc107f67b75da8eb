// Reference checkpoint -> our indexer file. The reference (REFERENCE.md "Reference checkpoint
// layout") stores, per target layer ID, retrievers.l{ID}.wq_a.weight [R, D],
// retrievers.l{ID}.wq_b.weight [H·128, R], retrievers.l{ID}.q_norm_weight [R] and
// retrievers.l{ID}.weights_proj.weight [H, D] in bf16 or f32; H = rows(wq_b) / 128. Its keys come
// from the backbone (DeepSeek's compressed keys), so the result has key_source "backbone" and no
// wk — unless the checkpoint carries retrievers.l{ID}.wk.weight [128, D] (then "hidden_mean").
// Weights keep their type (BF16 stays BF16, F32 stays F32; F16 is accepted too).
#pragma once
#include <string>
#include <vector>

#include "indexer/indexer_model.h"
#include "indexer/safetensors.h"

namespace flashmem {

struct ConvertOptions {
  int64_t chunk_tokens = 4;  // DESIGN.md default
  float rms_eps = 1e-6f;     // the reference's q_norm eps
  RopeParams rope;           // the reference's YaRN constants by default
};

struct ConvertResult {
  IndexerWeights weights;
  std::vector<std::string> ignored;  // tensors that are not retriever weights we know
};

// Builds the indexer from an open checkpoint. Throws Error on a missing or inconsistent tensor.
ConvertResult convert_reference_checkpoint(const SafetensorsFile& checkpoint,
                                           const ConvertOptions& options = {});
// Reads `in_path`, converts, writes `out_path` atomically.
ConvertResult convert_reference_file(const std::string& in_path, const std::string& out_path,
                                     const ConvertOptions& options = {});

}  // namespace flashmem
