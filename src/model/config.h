// Model hyper-parameters read from GGUF metadata, validated before any weight is touched.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "gguf/gguf.h"
#include "model/arch.h"

namespace flashmem {

// Multi-head latent attention (deepseek2; enabled when kv_lora > 0). Per token and layer the
// cache holds one row [kv_lora latent (RMSNormed), rope_dim rope'd k_pe]: ModelConfig then has
// n_kv_heads 1, head_dim kv_lora + rope_dim, v_dim kv_lora and values_in_keys. Queries are
// absorbed: per head q_abs = [W_kb[h] · q_nope[h] (kv_lora), RoPE(q_pe[h]) (rope_dim)], and the
// attention output per head (kv_lora) is expanded by W_vb[h] to v_head_dim before attn_output.
struct LatentAttention {
  int64_t q_lora = 0;      // attention.q_lora_rank; 0: attn_q projects D -> heads directly
  int64_t kv_lora = 0;     // attention.kv_lora_rank: latent width
  int64_t nope_dim = 0;    // key_length_mla - rope_dim: per-head query dims without position
  int64_t v_head_dim = 0;  // value_length_mla: per-head value width after W_vb
  bool enabled() const { return kv_lora > 0; }
};

// How the router weighs experts (deepseek2.expert_gating_func: 1 softmax, 2 sigmoid).
enum class ExpertGating { kSoftmax, kSigmoid };

// Mixture-of-experts feed-forward (deepseek2; enabled when n_experts > 0): layers from
// n_dense_lead on route each token to its n_used best experts (+ n_shared shared experts always).
struct MixtureOfExperts {
  int64_t n_dense_lead = 0;    // leading_dense_block_count: layers with the dense FFN
  int64_t n_experts = 0;       // expert_count
  int64_t n_used = 0;          // expert_used_count: top-k
  int64_t n_shared = 0;        // expert_shared_count (shexp matrices are n_shared · expert_ff wide)
  int64_t expert_ff = 0;       // expert_feed_forward_length
  ExpertGating gating = ExpertGating::kSoftmax;
  bool normalize = false;      // expert_weights_norm: the chosen weights divided by their sum
  float scale = 1.0f;          // expert_weights_scale (0 in a file means 1)
  bool enabled() const { return n_experts > 0; }
  bool is_moe_layer(int64_t il) const { return enabled() && il >= n_dense_lead; }
};

// YaRN RoPE scaling (rope.scaling.type = yarn), as llama.cpp applies it: per frequency pair a
// ramp between the original frequency (extrapolation) and f / factor (interpolation), and cos/sin
// multiplied by magnitude (see config_latent.cpp for the attention-factor rules).
struct RopeYarn {
  double factor = 0.0;      // rope.scaling.factor; 0: no YaRN
  int64_t orig_ctx = 0;     // rope.scaling.original_context_length
  // llama.cpp's defaults (hparams yarn_beta_fast / yarn_beta_slow): the number of rotations
  // within orig_ctx above which a pair is extrapolated, below which it is interpolated.
  double beta_fast = 32.0;
  double beta_slow = 1.0;
  float magnitude = 1.0f;   // cos/sin multiplier of the rotated dims
  bool enabled() const { return factor > 0.0; }
};

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
  // Values per kv head that attention reads: head_dim, except with MLA (kv_lora), where the
  // value is the first v_dim values of the key row and the cache stores each row once.
  int64_t v_dim = 0;
  bool values_in_keys = false;
  LatentAttention mla;
  MixtureOfExperts moe;
  RopeYarn yarn;

  int64_t q_dim() const { return n_heads * head_dim; }
  int64_t attn_out_dim() const { return n_heads * v_dim; }  // attention output per row
  // Rows of kv_dim elements the cache keeps per position and layer (K and V, or K alone).
  int64_t kv_rows() const { return values_in_keys ? 1 : 2; }
  int64_t kv_dim() const { return n_kv_heads * head_dim; }
  int64_t group_size() const { return n_heads / n_kv_heads; }
};

// Reads and validates the hyper-parameters. Throws Error naming the architecture when it is not
// supported, and naming the key for a missing or out-of-range value.
ModelConfig read_model_config(const GgufFile& file);

// The MLA, MoE and YaRN keys of a latent_moe arch (deepseek2) into c, whose generic fields
// read_model_config has read (key_length, rope.dimension_count, ...); sets the attention
// geometry (n_kv_heads, head_dim, v_dim, values_in_keys) and attn_scale. Throws Error naming
// the key for a missing, inconsistent or unsupported value (legacy attn_kv_b files included).
void read_latent_moe_config(const GgufFile& file, const std::string& p, ModelConfig& c);

}  // namespace flashmem
