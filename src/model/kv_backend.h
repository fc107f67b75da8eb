// Where a session keeps its KV history and what attention may read of it. The forward pass talks
// only to this interface: ContiguousKv (kv/kv_cache.h, no selection machinery) or the paged
// two-tier runtime (runtime/paged_kv.h). Both hand attention the same KvSpan rows, so a paged
// run that keeps every page is bit-identical to the contiguous one.
#pragma once
#include <cstdint>
#include <span>
#include <vector>

#include "kv/kv_cache.h"
#include "model/attention.h"

namespace flashmem {

// Receives attention probabilities of chosen positions (the dump's golden labels need them).
// Session::attention asks the backend for an observer once per layer and batch; with none (every
// backend but the dump's) nothing else happens, so plain runs are unchanged, bit for bit.
class AttentionObserver {
 public:
  virtual ~AttentionObserver() = default;
  // True if the probabilities of the token at `pos` are wanted.
  virtual bool wants_attention(int64_t pos) const = 0;
  // probs [n_heads, n_keys]: softmax of every query head of `layer` for the token at `pos` over
  // the n_keys positions it attended, in span order (positions 0..pos for a contiguous cache).
  // Called from the session's thread, tokens of a batch in order, after the layer's attention.
  virtual void observe_attention(int64_t layer, int64_t pos, const float* probs, int64_t n_heads,
                                 int64_t n_keys) = 0;
};

class KvBackend {
 public:
  virtual ~KvBackend() = default;

  virtual DType type() const = 0;
  virtual int64_t capacity() const = 0;

  // A batch of positions [pos0, pos0 + n) begins (decode: n == 1 after the prompt).
  virtual void begin_batch(int64_t pos0, int64_t n) = 0;
  // Stores one position's K and V ([kv_dim] f32 each, converted to type()) for `layer`; v is
  // not read (may be nullptr) when the model keeps values in the key rows (values_in_keys).
  virtual void store(int64_t layer, int64_t pos, const float* k, const float* v) = 0;
  // Spans (position order) attention of `layer` reads in this batch; valid until end_batch().
  virtual std::span<const KvSpan> spans(int64_t layer) = 0;
  // Prompt batches of a backend that does not keep its whole history in memory (a disk store):
  // attention reads positions [0, windowed_keys()) through window(), window_keys() positions at
  // a time, and spans(layer) then holds only the positions from windowed_keys() on. 0 (the
  // default): spans(layer) holds every position. Set from begin_batch() to end_batch(), never
  // together with an attention_observer().
  virtual int64_t windowed_keys() const { return 0; }
  // Positions per window: a positive multiple of kAttentionChunkKeys, so that no attention chunk
  // but the last window's straddles two windows (read only when windowed_keys() > 0).
  virtual int64_t window_keys() const { return 0; }
  // Spans of `layer` holding positions [first, min(first + window_keys(), windowed_keys())), in
  // position order; `first` is a multiple of window_keys() below windowed_keys(). Valid until
  // the next window() call or end_batch(). Throws Error if the history cannot be read.
  virtual std::span<const KvSpan> window(int64_t layer, int64_t first) { return {}; }
  // Hidden state entering `layer` (D floats) at `pos`; called only for observed_layers().
  virtual const std::vector<int64_t>& observed_layers() const {
    static const std::vector<int64_t> kNone;
    return kNone;
  }
  virtual void observe_hidden(int64_t layer, int64_t pos, const float* hidden) {}
  // Query-dependent selection (quest): when true, the forward pass hands each layer's queries to
  // observe_queries() before it calls spans(layer), so spans may depend on them.
  virtual bool wants_queries() const { return false; }
  // q: [n, n_heads * head_dim] the batch's queries of `layer` after RoPE.
  virtual void observe_queries(int64_t layer, const float* q, int64_t n) {}
  // Optional observer of attention probabilities (nullptr: none, the default).
  virtual AttentionObserver* attention_observer() { return nullptr; }
  // Every layer of the batch is done; `is_prompt_end` is true after the last prompt batch.
  virtual void end_batch(bool is_prompt_end) = 0;
  // Forget the sequence.
  virtual void reset() = 0;
  // Benchmarks only: makes positions [0, n) hold seeded random K/V values (N(0,1)) as if a
  // prompt of n tokens had been processed, without running the model.
  virtual void fill_synthetic(int64_t n, uint64_t seed) = 0;
};

// Seeded N(0, 1) rows in `type` (F16 or F32): the synthetic KV history of fill_synthetic().
void fill_random_rows(uint8_t* dst, int64_t n_rows, int64_t kv_dim, DType type, uint64_t seed);

// The whole history in one contiguous cache per layer: one span per layer.
class ContiguousKv final : public KvBackend {
 public:
  ContiguousKv(int64_t n_layers, int64_t capacity, int64_t kv_dim, DType type, bool values_in_keys)
      : cache_(n_layers, capacity, kv_dim, type, values_in_keys) {}
  DType type() const override { return cache_.type(); }
  int64_t capacity() const override { return cache_.capacity(); }
  void begin_batch(int64_t pos0, int64_t n) override { n_visible_ = pos0 + n; }
  void store(int64_t layer, int64_t pos, const float* k, const float* v) override {
    cache_.store(layer, pos, k, v);
  }
  std::span<const KvSpan> spans(int64_t layer) override {
    span_ = {0, n_visible_, cache_.k_row(layer, 0), cache_.v_row(layer, 0)};
    return {&span_, 1};
  }
  void end_batch(bool) override {}
  void reset() override { n_visible_ = 0; }
  void fill_synthetic(int64_t n, uint64_t seed) override;
  const KvCache& cache() const { return cache_; }

 private:
  KvCache cache_;
  int64_t n_visible_ = 0;
  KvSpan span_;
};

}  // namespace flashmem
