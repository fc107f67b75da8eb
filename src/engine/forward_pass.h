// The batched forward pass behind Engine::decode: the rows of one pass belong to several
// sequences. Row layout: every single-token slice first (rows [0, n_single)), then each prompt
// chunk's rows together, so weight products are one matvec_batch over the single rows (each
// row bit-identical to matvec) plus one matmul per prompt chunk (bit-identical to the chunk
// processed alone); norms, RoPE and activations are per row; attention per slice over its own
// sequence's KV spans.
#pragma once
#include <cstdint>
#include <initializer_list>
#include <span>
#include <utility>
#include <vector>

#include "flashmem/engine.h"
#include "model/attention.h"
#include "model/attention_prefill.h"
#include "model/model.h"
#include "util/thread_pool.h"

namespace flashmem {

// gate[i] = act(gate[i]) · up[i] for the arch's activation, i < n.
void activate_mul(FfnActivation act, float* gate, const float* up, int64_t n);

// One sequence's rows in a pass.
struct PassSlice {
  Sequence* sequence = nullptr;
  std::span<const int32_t> tokens;  // [n] at positions [sequence->n_past(), + n)
  int64_t row0 = 0;                 // first row of the pass
  float* logits = nullptr;          // [n_vocab] of the last row, [n, n_vocab] with all_logits
  bool all_logits = false;
  bool is_prompt_end = false;       // handed to KvBackend::end_batch
};

class ForwardPass {
 public:
  ForwardPass(const Model& model, ThreadPool& pool, ForwardTimes& times);
  // Runs one pass; slices must be ordered single-token slices first, rows consecutive. On
  // success every slice's sequence has advanced by its tokens.
  void run(std::span<const PassSlice> slices);

 private:
  void resize(int64_t rows);
  // y [rows, m.rows] = x [rows, m.cols] · m^T over the pass's row layout.
  void linear(const Matrix& m, const float* x, float* y);
  // linear(m_i, x, y_i) for each pair of `outputs`: when the pass is one single-token row (one
  // sequence decoding) and the matrices share a type and column count, one matvec_many dispatch
  // for all of them (bit-identical to separate ones), else one linear each.
  void linear_many(std::initializer_list<std::pair<const Matrix*, float*>> outputs, const float* x);
  void attention(const PassSlice& slice, int64_t layer);
  // From xn_: q_, and each row's K and V stored in its sequence's KV (biases, q/k norms, RoPE).
  void attention_inputs(const LayerWeights& l, int64_t layer);
  // out [R, D] = w_down · (act(w_gate · xn_) ⊙ w_up · xn_), through gate_ and up_.
  void dense_ffn(const Matrix& w_gate, const Matrix& w_up, const Matrix& w_down, float* out);
  // After the last layer: end every slice's batch, then the logits the slices asked for.
  void finish_pass(std::span<const PassSlice> slices);
  // RoPE angles of `pos` into rope_cos_ / rope_sin_ (YaRN magnitude applied).
  void rope_angles_at(int64_t pos);
  // deepseek2 (pass_latent.cpp). Latent attention input: from xn_, absorbed queries into q_
  // ([R, n_heads * (kv_lora + rope)]) and each row's latent + rope'd k_pe stored in the KV.
  void latent_queries_and_keys(const LayerWeights& l, int64_t layer);
  // attn_ [R, n_heads * kv_lora] through W_vb per head and attn_output into proj_ [R, D].
  void latent_output(const LayerWeights& l);
  // proj_ [R, D] = shared experts + weighted routed experts of xn_.
  void moe_ffn(const LayerWeights& l);
  // chosen_ / chosen_weight_ from router_: softmax or sigmoid gating, top n_used by probability
  // (+ selection bias), weights normalised and scaled as the config says.
  void route_experts(const ExpertWeights& e);

  const Model& model_;
  ThreadPool& pool_;
  ForwardTimes& times_;
  std::span<const PassSlice> slices_;
  int64_t n_rows_ = 0, n_single_ = 0;
  std::vector<double> rope_freqs_;          // [rope_dim/2] base^(-2i/rope_dim) / factor_i
  std::vector<float> rope_cos_, rope_sin_;  // [rope_dim/2] the angles of the position being rotated

  // Scratch for the pass's rows (R), grown as needed.
  std::vector<float> x_;       // [R, D] residual stream
  std::vector<float> xn_;      // [R, D] normed input of the current sub-layer
  std::vector<float> q_;       // [R, n_heads*head_dim]
  std::vector<float> k_;       // [R, n_kv_heads*head_dim]
  std::vector<float> v_;       // [R, n_kv_heads*head_dim]
  std::vector<float> attn_;    // [R, n_heads*head_dim] attention output
  std::vector<float> gate_;    // [R, F]
  std::vector<float> up_;      // [R, F]
  std::vector<float> proj_;    // [R, D] output of wo / w_down before the residual add
  // deepseek2 scratch (empty for other archs).
  std::vector<float> q_lat_;   // [R, q_lora] q_a projection, normed
  std::vector<float> q_full_;  // [R, n_heads * (nope + rope)] per-head queries before absorption
  std::vector<float> kv_lat_;  // [R, kv_lora + rope] latent | k_pe (the KV row)
  std::vector<float> v_out_;   // [R, n_heads * v_head_dim] attention output through W_vb
  std::vector<float> router_;  // [R, n_experts] router logits
  std::vector<int64_t> chosen_;        // [R, n_used] each row's experts, best first
  std::vector<float> chosen_weight_;   // [R, n_used] their weights (normalised, scaled)
  std::vector<float> moe_x_;           // [R, D] the rows one expert serves, gathered
  std::vector<float> moe_gate_, moe_up_;  // [R, expert_ff] their activations
  std::vector<float> moe_y_;           // [R, D] their expert outputs
  std::vector<float> expert_out_;      // [R, n_used, D] each row's routed experts' outputs
  std::vector<float> expert_sum_;      // [D] the weighted sum of a row's routed experts
  std::vector<float> logits_;  // [n_single, n_vocab] the single rows' logits
  std::vector<float> probs_;   // [n, n_heads, keys] one slice's attention probabilities (observer only)
  std::vector<float> partials_;       // [chunks, attention_partial_floats] one run's chunk states
  std::vector<int64_t> chunk_first_;  // [run tokens + 1] each token's first chunk in partials_
  // [run items] (token of the run, chunk from the range's first) of attention's chunk-major order
  std::vector<std::pair<int32_t, int32_t>> run_items_;
  std::vector<KvSpan> rest_spans_;    // a windowed history's last window, then spans(layer)
  KeyIndex one_token_keys_;           // a decode token's keys among the spans it attends (index_keys)
  PrefillAttention prefill_;          // a prompt slice's tiled attention (states of its tiles)
};

}  // namespace flashmem
