// Forward and backward pass of the trainer's Llama model over one sequence, by hand:
// embedding → n_layers × (RMSNorm → Q/K/V → RoPE → causal GQA attention → Wo, residual;
// RMSNorm → SwiGLU FFN, residual) → RMSNorm → output head → cross-entropy on chosen positions.
// The arithmetic follows the engine's llama forward (model/session.cpp) so a trained model's
// logits in the engine equal these (tests/model/test_lm_engine.cpp).
#pragma once
#include <cstdint>
#include <span>
#include <vector>

#include "lm/lm_params.h"

namespace flashmem::lm {

// One supervised position: the logits at `pos` should predict `token` (the next token), with
// `weight` on its cross-entropy (answers 1; other text a small language-modelling weight).
struct Target {
  int64_t pos;
  int32_t token;
  float weight = 1.0f;
};

// RoPE angles for positions [0, n): exactly the engine's (double angle, float cos/sin).
struct RopeTable {
  int64_t n_pos = 0, half = 0;
  std::vector<float> cos, sin;  // [n_pos, head_dim/2]
};
RopeTable make_rope_table(const LmConfig& c, int64_t n_pos);

// Activations of one layer kept for the backward pass (T = sequence length).
struct LayerActivations {
  std::vector<float> x_in;      // [T, D] residual stream entering the layer
  std::vector<float> inv_rms1;  // [T] 1 / rms of x_in
  std::vector<float> xn1;       // [T, D] attention input (normed)
  std::vector<float> q;         // [T, Q] queries after RoPE
  std::vector<float> k;         // [T, KV] keys after RoPE
  std::vector<float> v;         // [T, KV]
  std::vector<float> probs;     // [H, T, T] attention probabilities (0 above the diagonal)
  std::vector<float> attn;      // [T, Q] attention output (input of Wo)
  std::vector<float> x_mid;     // [T, D] residual stream after attention
  std::vector<float> inv_rms2;  // [T]
  std::vector<float> xn2;       // [T, D] FFN input (normed)
  std::vector<float> gate;      // [T, F] W_gate · xn2 (pre-activation)
  std::vector<float> up;        // [T, F] W_up · xn2
  std::vector<float> act;       // [T, F] silu(gate) ⊙ up (input of W_down)
};

// Everything one sequence's forward leaves for its backward; reused across sequences.
struct Activations {
  int64_t n_tokens = 0;
  std::vector<LayerActivations> layers;
  std::vector<float> x_final;    // [T, D] residual stream after the last layer
  std::vector<float> inv_rms_f;  // [T]
  std::vector<float> xn_f;       // [T, D] output head input (normed)
  std::vector<float> probs_out;  // [n_targets, V] softmax of the targets' logits
  // Scratch shared by forward and backward.
  std::vector<float> scratch_a, scratch_b, scratch_c, scratch_d;
};

// Runs the forward pass over `tokens` (ids < n_vocab, length ≤ rope.n_pos) and returns the
// weighted sum of the targets' cross-entropies (nats). If `logits` is non-null it receives the logits of
// the target positions [n_targets, V]. Activations are kept in `acts` for backward().
double forward(const LmConfig& c, const ParamLayout& layout, const float* params,
               const RopeTable& rope, std::span<const int32_t> tokens,
               std::span<const Target> targets, Activations& acts, float* logits = nullptr);

// Adds d(summed loss)/d(params) of the last forward() into `grads` [layout.total].
void backward(const LmConfig& c, const ParamLayout& layout, const float* params,
              const RopeTable& rope, std::span<const int32_t> tokens,
              std::span<const Target> targets, Activations& acts, float* grads);

}  // namespace flashmem::lm
