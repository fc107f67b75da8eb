// Random-weight models for tests and benchmarks, written as ordinary GGUF files.
#pragma once
#include <cstdint>
#include <string>

#include "tensor/dtype.h"

namespace flashmem {

struct RandomModelSpec {
  std::string arch = "llama";  // any supported architecture (model/arch.h)
  int64_t dim = 128;
  int64_t n_layers = 2;
  int64_t n_heads = 4;
  int64_t n_kv_heads = 2;
  int64_t head_dim = 0;        // 0: dim / n_heads; else written as attention.key_length
  int64_t rope_dim = 0;        // rotated dims per head; 0: head_dim
  int64_t ff_dim = 352;
  int64_t n_vocab = 512;       // >= 259: <unk>, <s>, </s> and the 256 byte tokens come first
  int64_t context_length = 4096;
  DType type = DType::F32;     // type of the 2-D weight matrices; norms and biases stay F32
  bool tied_output = false;
  // Written only when > 0, and only for archs that read them (else the spec is refused):
  int64_t window = 0;          // attention.sliding_window
  int64_t window_period = 0;   // attention.sliding_window_pattern
  double attn_softcap = 0.0;   // attn_logit_softcapping
  double final_softcap = 0.0;  // final_logit_softcapping
  // Write `rope_freqs.weight` (Llama 3.1-style RoPE frequency divisors), uniform in [1, 8]: the
  // range of the factors in Llama 3.1 files (1 for short wavelengths, 8 for long ones).
  bool rope_freq_factors = false;
  uint64_t seed = 1;
  // --arch deepseek2 only (refused for other archs): latent attention, experts, YaRN.
  struct Deepseek2 {
    int64_t q_lora = 0;          // attention.q_lora_rank (0: attn_q projects directly)
    int64_t kv_lora = 64;        // attention.kv_lora_rank
    int64_t nope_dim = 32;       // per-head q/k dims without rope (key_length_mla − rope_dim)
    int64_t v_head_dim = 32;     // value_length_mla
    int64_t dense_layers = 1;    // leading_dense_block_count
    int64_t experts = 8;         // expert_count
    int64_t experts_used = 2;    // expert_used_count
    int64_t shared_experts = 1;  // expert_shared_count (>= 1: llama.cpp creates the shexp tensors)
    int64_t expert_ff = 64;      // expert_feed_forward_length
    int64_t gating = 1;          // expert_gating_func: 1 softmax, 2 sigmoid
    bool expert_bias = false;    // exp_probs_b.bias (selection bias, DeepSeek-V3)
    bool norm_weights = false;   // expert_weights_norm
    double weights_scale = 0.0;  // expert_weights_scale (0: not written)
    double yarn_factor = 0.0;    // rope.scaling.type = yarn with this factor (0: no scaling)
    int64_t yarn_orig_ctx = 0;   // rope.scaling.original_context_length (0: not written)
    double yarn_mscale_all_dim = 0.0;  // written as yarn_log_multiplier = 0.1 · this (0: not written)
  };
  Deepseek2 deepseek2;
};

// Writes the model atomically to `path`. The vocabulary is SentencePiece-style with byte
// fallback and placeholder pieces "▁tokN", so every command (run, tokenize) works on it.
// Throws Error on an invalid spec.
void write_random_model(const RandomModelSpec& spec, const std::string& path);

}  // namespace flashmem
