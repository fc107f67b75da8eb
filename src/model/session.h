// An inference session: one sequence's state (KV cache, position, scratch) over a shared Model.
// The caller owns the session; the model is read-only and can be shared between sessions.
#pragma once
#include <cstdint>
#include <memory>
#include <span>
#include <vector>

#include "model/kv_backend.h"
#include "model/model.h"
#include "util/thread_pool.h"

namespace flashmem {

struct SessionOptions {
  int64_t n_ctx = 0;           // KV capacity in tokens; 0 = the model's context_length
  DType kv_type = DType::F16;  // F16 halves KV bytes; F32 matches llama.cpp's reference exactly
  int n_threads = 0;           // 0 = all hardware threads
  int64_t max_batch = 256;     // prefill processes the prompt in batches of this many tokens
};

// Wall time spent in each part of the forward pass (seconds, accumulated).
struct ForwardTimes {
  double matmul = 0;     // weight matrix products (the bandwidth-bound part of decode)
  double attention = 0;  // QK, softmax, V (incl. KV writes)
  double other = 0;      // norms, RoPE, activations, embedding
};

class Session {
 public:
  // KV history in one contiguous cache (no selection machinery).
  Session(std::shared_ptr<const Model> model, const SessionOptions& options);
  // KV history in a caller-built backend (the paged two-tier runtime); options.n_ctx and
  // kv_type are taken from the backend.
  Session(std::shared_ptr<const Model> model, const SessionOptions& options,
          std::unique_ptr<KvBackend> kv);

  const Model& model() const { return *model_; }
  int64_t n_past() const { return n_past_; }
  int64_t capacity() const { return kv_->capacity(); }
  KvBackend& kv() { return *kv_; }
  const KvBackend& kv() const { return *kv_; }
  ThreadPool& pool() { return pool_; }
  const ForwardTimes& times() const { return times_; }
  void reset_times() { times_ = ForwardTimes{}; }

  // Feeds `tokens` at positions [n_past, n_past + n). If `logits` is non-null it receives
  // [n, n_vocab] logits (all_logits) or [n_vocab] for the last token only. Throws Error when the
  // tokens do not fit the KV capacity or an id is outside the vocabulary.
  void forward(std::span<const int32_t> tokens, float* logits, bool all_logits);
  // Benchmarks only: a synthetic KV history of n positions (seeded random values), as if a
  // prompt had been processed; decoding continues from position n.
  void fill_synthetic(int64_t n, uint64_t seed) {
    kv_->fill_synthetic(n, seed);
    n_past_ = n;
  }
  // Forgets the sequence (the KV contents are simply overwritten later).
  void reset() {
    n_past_ = 0;
    kv_->reset();
  }

 private:
  void forward_batch(std::span<const int32_t> tokens, float* logits, bool all_logits,
                     bool is_prompt_end);
  void attention(int64_t layer, int64_t n, int64_t pos0);
  void linear(const Matrix& m, const float* x, float* y, int64_t n);

  std::shared_ptr<const Model> model_;
  SessionOptions options_;
  ThreadPool pool_;
  std::unique_ptr<KvBackend> kv_;
  int64_t n_past_ = 0;
  ForwardTimes times_;
  std::vector<double> rope_freqs_;            // [rope_dim/2] base^(-2i/rope_dim)
  std::vector<float> rope_cos_, rope_sin_;    // [rope_dim/2] the angles of the position being rotated

  // Scratch for one batch of up to max_batch tokens (B).
  std::vector<float> x_;       // [B, D] residual stream
  std::vector<float> xn_;      // [B, D] normed input of the current sub-layer
  std::vector<float> q_;       // [B, n_heads*head_dim]
  std::vector<float> k_;       // [B, n_kv_heads*head_dim]
  std::vector<float> v_;       // [B, n_kv_heads*head_dim]
  std::vector<float> attn_;    // [B, n_heads*head_dim] attention output
  std::vector<float> gate_;    // [B, F]
  std::vector<float> up_;      // [B, F]
  std::vector<float> proj_;    // [B, D] output of wo / w_down before the residual add
  std::vector<float> probs_;   // [B, n_heads, keys] attention probabilities (observer only)
  std::vector<float> partials_;       // [chunks, attention_partial_floats] one run's chunk states
  std::vector<int64_t> chunk_first_;  // [run tokens + 1] each token's first chunk in partials_
  std::vector<int64_t> range_first_;  // [run tokens + 1] each token's first item of a chunk range
  std::vector<KvSpan> rest_spans_;    // a windowed history's last window, then spans(layer)
};

}  // namespace flashmem
