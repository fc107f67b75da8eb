// A Sequence: one conversation's KV state on an Engine (include/flashmem/engine.h). The caller
// owns it (as a gemma.cpp caller owns its KV cache); it must not outlive its engine.
//
// Its KV history lives either in the plain contiguous cache (no selection machinery) or in the
// paged two-tier runtime with a selection policy (runtime/paged_kv.h), whose pages go to the
// engine's slow tier. Creating a sequence reserves its resident KV bytes against the engine's
// budget; destroying it releases them.
#pragma once
#include <cstdint>
#include <memory>
#include <optional>

#include "model/kv_backend.h"
#include "runtime/paged_kv.h"
#include "tensor/dtype.h"

namespace flashmem {

class Engine;

struct SequenceOptions {
  int64_t n_ctx = 0;           // KV capacity in tokens; 0 = the model's context_length
  DType kv_type = DType::F16;  // F16 halves KV bytes; F32 matches llama.cpp's reference exactly
  // Unset: the plain contiguous cache. Set: the two-tier runtime with this policy; its `store`
  // is replaced by the engine's kv_store and its indexer defaults to the engine's.
  std::optional<PagedKvOptions> paged = std::nullopt;
};

class Sequence {
 public:
  // Throws Error on bad options, or when the engine's KV budget cannot hold the sequence's
  // resident cells (the message names both figures).
  Sequence(Engine& engine, const SequenceOptions& options);
  // A caller-built paged runtime (oracle record/replay builds its own PagedKv).
  Sequence(Engine& engine, std::unique_ptr<PagedKv> paged);
  // A caller-built backend of another kind (the dump's attention recorder, test backends);
  // reserved as a contiguous cache of its capacity.
  Sequence(Engine& engine, std::unique_ptr<KvBackend> kv);
  ~Sequence();
  Sequence(const Sequence&) = delete;
  Sequence& operator=(const Sequence&) = delete;

  Engine& engine() const { return *engine_; }
  int64_t n_past() const { return n_past_; }
  // True between a decode() part with BatchItem::prompt_continues and the prompt's last part.
  bool prompt_open() const { return prompt_open_; }
  int64_t capacity() const { return kv_->capacity(); }
  DType kv_type() const { return kv_->type(); }

  // The two-tier runtime and its accounting; nullptr / nullopt for the contiguous cache.
  const PagedKv* paged() const { return paged_; }
  std::optional<LsaStats> lsa_stats() const;
  // Bytes of KV cells reserved (contiguous: the whole capacity; paged: the resident pool) and
  // of those holding pages now.
  uint64_t reserved_kv_bytes() const { return reserved_bytes_; }
  uint64_t resident_kv_bytes() const;

  // Forgets the history (a paged sequence starts a new store).
  void reset();
  // Benchmarks only: a synthetic KV history of n positions (seeded N(0,1) values), as if a
  // prompt of n tokens had been processed; decoding continues from position n.
  void fill_synthetic(int64_t n, uint64_t seed);

  // The forward pass's view of the KV state (engine internals and tests).
  KvBackend& kv() { return *kv_; }
  const KvBackend& kv() const { return *kv_; }

 private:
  friend class Engine;  // sets prompt_open_
  friend class ForwardPass;
  // Takes the backend (`paged`: the same object when it is the paged runtime, else nullptr) and
  // reserves its bytes against the engine's budget.
  void adopt(std::unique_ptr<KvBackend> kv, const PagedKv* paged);
  Engine* engine_;
  std::unique_ptr<KvBackend> kv_;
  const PagedKv* paged_ = nullptr;  // kv_ when it is the paged runtime
  uint64_t reserved_bytes_ = 0;
  int64_t n_past_ = 0;
  bool prompt_open_ = false;
};

}  // namespace flashmem
