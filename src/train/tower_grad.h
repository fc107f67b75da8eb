// The indexer's two towers in f32 with hand-written gradients, for training (towers.h has the
// inference path). Per target layer, for a decode token (hidden h [D], position p) and chunks c
// (key-tower input m_c [D], first position p_c):
//   a = W_qa h [R];  n = a / sqrt(mean(a²) + eps);  q_lora = n ⊙ g
//   q_h = RoPE_p((W_qb q_lora)_h) [H, 128];   w = (W_p h) · 128^-0.5 · H^-0.5 [H]
//   k_c = RoPE_{p_c}(W_k m_c) [128];          logit_c = Σ_h w_h relu(q_h · k_c)
// Differences from inference, on purpose: (1) the bf16 roundings and the fp8 key quantization are
// not differentiable; they are treated as identity (straight-through: the gradient flows as if
// they were not there) and are simply left out of this f32 graph; (2) the Hadamard transform is
// left out of both towers: it is orthogonal, so q·k is the same with or without it. Evaluation
// always uses the inference code (towers.h, scoring.h) on the written indexer.
#pragma once
#include <cstdint>
#include <vector>

#include "indexer/indexer_model.h"
#include "indexer/rope.h"
#include "train/losses.h"

namespace flashmem {

// All trainable values of an indexer, flat (f32). Per layer, in this order:
// wq_a [R, D], g [R], wq_b [H·128, R], wp [H, D], wk [128, D].
struct TowerLayout {
  int64_t D = 0, R = 0, H = 0;
  int64_t wq_a = 0, g = 0, wq_b = 0, wp = 0, wk = 0, layer_size = 0;  // offsets within a layer
  int64_t n_layers = 0;
  int64_t size() const { return layer_size * n_layers; }
};
TowerLayout tower_layout(const IndexerConfig& config);

// Flat parameters from (f32 conversion) / to (type) indexer weights with a learned key tower.
std::vector<float> params_from_weights(const IndexerWeights& weights);
IndexerWeights weights_from_params(const IndexerConfig& config, const std::vector<float>& params, DType type);

// One sample: its inputs for every target layer and its chunks.
struct SampleInput {
  int64_t pos = 0;
  int64_t n_chunks = 0;
  std::vector<float> hidden;      // [layers, D]
  std::vector<float> key_inputs;  // [layers, n_chunks, D]
  std::vector<int32_t> first_pos; // [n_chunks]
  std::vector<float> labels;      // [n_chunks] 1 positive, 0 negative
  std::vector<float> weights;     // [n_chunks]
};

// Scratch reused across samples by one thread.
struct TowerScratch {
  std::vector<float> a, n, q_lora, v, w, u, k, s, logits, dlogits, dq, dk, dv, dql, dw, tmp;
  std::vector<YarnRope::Angles> angles, inverse_angles;  // [n_chunks]
};

// Σ over layers of the loss of the layer's logits; adds dLoss/dparams to grad (nullptr: loss
// only). `rope` holds the indexer's YaRN parameters.
float tower_loss_grad(const TowerLayout& layout, const YarnRope& rope, float rms_eps,
                      const std::vector<float>& params, const SampleInput& sample, LossKind loss,
                      float* grad, TowerScratch& scratch);

}  // namespace flashmem
