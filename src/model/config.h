// Model hyper-parameters read from GGUF metadata, validated before any weight is touched.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "gguf/gguf.h"
#include "model/arch.h"

namespace flashmem {

struct ModelConfig {
  const ArchSpec* arch = nullptr;
  int64_t n_vocab = 0;
  int64_t dim = 0;             // embedding width D
  int64_t n_layers = 0;
  int64_t n_heads = 0;
  int64_t n_kv_heads = 0;      // divides n_heads (GQA group = n_heads / n_kv_heads)
  int64_t head_dim = 0;        // <arch>.attention.key_length, else dim / n_heads
  int64_t ff_dim = 0;
  int64_t context_length = 0;  // trained context (informational; not a hard limit)
  int64_t rope_dim = 0;        // rotated dims per head (<= head_dim, even)
  double rope_base = 10000.0;
  double rms_eps = 1e-5;
  // Scores are (q · k) · attn_scale before soft-capping and softmax: 1/√head_dim unless the arch
  // says otherwise (ArchSpec::embd_per_head_scale_layers).
  double attn_scale = 0.0;
  double attn_softcap = 0.0;   // cap · tanh(score / cap) when > 0
  double final_softcap = 0.0;  // the same on the output logits
  float embd_scale = 1.0f;     // embeddings are multiplied by this (√D for gemma2)
  std::vector<int64_t> layer_window;  // [n_layers] sliding window in positions; 0 = all positions

  int64_t q_dim() const { return n_heads * head_dim; }
  int64_t kv_dim() const { return n_kv_heads * head_dim; }
  int64_t group_size() const { return n_heads / n_kv_heads; }
};

// Reads and validates the hyper-parameters. Throws Error naming the architecture when it is not
// supported, and naming the key for a missing or out-of-range value.
ModelConfig read_model_config(const GgufFile& file);

}  // namespace flashmem
