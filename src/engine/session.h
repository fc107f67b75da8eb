// A Session: one Engine with one Sequence (include/flashmem/), for callers that run a single
// sequence with its own thread pool (tests of the forward pass, train-lm's evaluation, tools
// not yet ported to the Engine API). New code uses Engine and Sequence directly.
#pragma once
#include <cstdint>
#include <memory>
#include <optional>
#include <span>
#include <string>

#include "flashmem/engine.h"
#include "flashmem/sequence.h"
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

class Session {
 public:
  // KV history in one contiguous cache (no selection machinery).
  Session(std::shared_ptr<const Model> model, const SessionOptions& options);
  // KV history in the paged runtime with `paged` (its store becomes the engine's slow tier, the
  // engine's pool runs its indexer work).
  Session(std::shared_ptr<const Model> model, const SessionOptions& options, const PagedKvOptions& paged);
  // KV history in a caller-built paged runtime; options.n_ctx and kv_type are taken from it.
  Session(std::shared_ptr<const Model> model, const SessionOptions& options,
          std::unique_ptr<PagedKv> kv);
  // KV history in another caller-built backend (the dump's recorder, test backends).
  Session(std::shared_ptr<const Model> model, const SessionOptions& options,
          std::unique_ptr<KvBackend> kv);

  const Model& model() const { return engine_.model(); }
  Engine& engine() { return engine_; }
  Sequence& sequence() { return *sequence_; }
  const Sequence& sequence() const { return *sequence_; }
  int64_t n_past() const { return sequence_->n_past(); }
  int64_t capacity() const { return sequence_->capacity(); }
  KvBackend& kv() { return sequence_->kv(); }
  const KvBackend& kv() const { return sequence_->kv(); }
  // The paged runtime, or nullptr for the contiguous cache.
  const PagedKv* paged() const { return sequence_->paged(); }
  ThreadPool& pool() { return engine_.pool(); }
  const ForwardTimes& times() const { return engine_.times(); }
  void reset_times() { engine_.reset_times(); }

  // Feeds `tokens` at positions [n_past, n_past + n). If `logits` is non-null it receives
  // [n, n_vocab] logits (all_logits) or [n_vocab] for the last token only. Throws Error when the
  // tokens do not fit the KV capacity or an id is outside the vocabulary.
  void forward(std::span<const int32_t> tokens, float* logits, bool all_logits) {
    engine_.forward(*sequence_, tokens, logits, all_logits);
  }
  // Benchmarks only: see Sequence::fill_synthetic.
  void fill_synthetic(int64_t n, uint64_t seed) { sequence_->fill_synthetic(n, seed); }
  // Forgets the sequence.
  void reset() { sequence_->reset(); }
  // Replaces the sequence with the one persisted under `id` in the engine's slow tier
  // (Sequence::persist, SequenceOptions::attach). Only for a session built with PagedKvOptions;
  // Error when there is no such entry or it was persisted with other settings.
  void attach(const std::string& id);

 private:
  Engine engine_;
  std::unique_ptr<Sequence> sequence_;
  std::optional<SequenceOptions> paged_options_;  // what attach() rebuilds the sequence with
};

}  // namespace flashmem
