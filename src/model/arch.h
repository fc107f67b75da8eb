// Architectures as data. Adding one = one arch_<name>.cpp defining an ArchSpec + one line in
// arch_registry.cpp. The forward pass branches on these fields, never on the name.
#pragma once
#include <cstdint>
#include <string_view>
#include <vector>

#include "tensor/rope.h"  // RopeStyle

namespace flashmem {

// Activation of the gated feed-forward block: act(W_gate·x) ⊙ W_up·x.
enum class FfnActivation {
  kSilu,      // x · sigmoid(x) (SwiGLU: llama, qwen, phi3)
  kGeluTanh,  // 0.5 x (1 + tanh(√(2/π) (x + 0.044715 x³))) (GeGLU: gemma)
};

// Which layers attend through a sliding window of <arch>.attention.sliding_window positions
// (a token at p attends positions p - window + 1 .. p, llama.cpp's LLAMA_SWA_TYPE_STANDARD).
enum class WindowLayers {
  kNone,     // the key is ignored (llama.cpp ignores it for these archs too)
  kAll,      // every layer, when the key is present and > 0 (Mistral 7B v0.1)
  kPattern,  // layer il is windowed iff il % period < period - 1, period from
             // <arch>.attention.sliding_window_pattern (gemma2: even layers)
};

struct ArchSpec {
  std::string_view name;      // general.architecture; also the metadata key prefix
  RopeStyle rope_style;
  bool qkv_bias;              // attn_{q,k,v}.bias tensors required (optional for the others)
  double default_rms_eps;     // when <arch>.attention.layer_norm_rms_epsilon is absent
  double default_rope_base;   // when <arch>.rope.freq_base is absent
  bool qk_norm = false;       // attn_{q,k}_norm [head_dim]: per-head RMSNorm of q and k before RoPE
  bool post_norms = false;    // attn_post_norm, ffn_post_norm [D]: RMSNorm of each block's output
                              // before it joins the residual stream
  bool scale_embeddings = false;  // embeddings multiplied by √D
  FfnActivation ffn_activation = FfnActivation::kSilu;
  // Soft-capping cap · tanh(s / cap) of attention scores and of the final logits; the caps come
  // from <arch>.attn_logit_softcapping / final_logit_softcapping, these are the defaults when the
  // keys are absent (0 = no capping for the arch).
  double default_attn_softcap = 0.0;
  double default_final_softcap = 0.0;
  WindowLayers window_layers = WindowLayers::kNone;
  int64_t default_window = 0;         // kPattern: window when the key is absent
  int64_t default_window_period = 0;  // kPattern: period when the key is absent
  // Query scale 1/√(D / n_heads) instead of 1/√head_dim for models of exactly this many layers
  // (0 = never): llama.cpp's rule for Gemma 2 27B (query_pre_attn_scalar = 144 = 4608 / 32),
  // which GGUF files do not record.
  int64_t embd_per_head_scale_layers = 0;
  bool always_tied = false;   // the output matrix is token_embd; output.weight is never read
  // How llama.cpp's converter writes the arch (make-random-model follows it; the loader accepts
  // both forms for every arch): attn_qkv [Q + 2 KV, D] and ffn_up [2F, D] = gate | up.
  bool fused_projections = false;
  // DeepSeek-V2/V3 blocks: multi-head latent attention and a mixture-of-experts FFN after the
  // leading dense layers, their keys read by read_latent_moe_config (model/config_latent.cpp).
  bool latent_moe = false;
};

// nullptr when the architecture is not supported.
const ArchSpec* find_arch(std::string_view name);
std::vector<std::string_view> supported_arch_names();

}  // namespace flashmem
