// The batched forward pass behind Engine::decode: the rows of one pass belong to several
// sequences. Row layout: every single-token slice first (rows [0, n_single)), then each prompt
// chunk's rows together, so weight products are one matvec_batch over the single rows (each
// row bit-identical to matvec) plus one matmul per prompt chunk (bit-identical to the chunk
// processed alone); norms, RoPE and activations are per row; attention per slice over its own
// sequence's KV spans.
#pragma once
#include <cstdint>
#include <span>
#include <vector>

#include "flashmem/engine.h"
#include "model/attention.h"
#include "model/model.h"
#include "util/thread_pool.h"

namespace flashmem {

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
  void attention(const PassSlice& slice, int64_t layer);

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
  std::vector<float> logits_;  // [n_single, n_vocab] the single rows' logits
  std::vector<float> probs_;   // [n, n_heads, keys] one slice's attention probabilities (observer only)
  std::vector<float> partials_;       // [chunks, attention_partial_floats] one run's chunk states
  std::vector<int64_t> chunk_first_;  // [run tokens + 1] each token's first chunk in partials_
  // [run items] (token of the run, chunk from the range's first) of attention's chunk-major order
  std::vector<std::pair<int32_t, int32_t>> run_items_;
  std::vector<KvSpan> rest_spans_;    // a windowed history's last window, then spans(layer)
};

}  // namespace flashmem
