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
#include <string>
#include <vector>

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
  // Non-empty: the sequence continues the one persisted under this id (persist() below) in the
  // engine's slow tier instead of starting empty. `paged` must be set, with the options the
  // sequence was persisted with (KV type, page geometry, policy and its options, the lsa
  // indexer; n_ctx too once its prompt had ended, any n_ctx >= n_past while the prompt was
  // open), on an engine of the same model; anything else is an Error naming the difference.
  // Its history (n_past, tokens, KV, the policy's state, the selection) is then exactly the
  // persisted one: every later decode() gives the bits the persisted sequence would have given.
  // The entry is only read (its pages are copied into this sequence's own store), so several
  // sequences may attach one entry, and it stays until Engine::forget_sequence.
  std::string attach = {};
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

  // The token ids of the history [n_past] (every token decode() appended; -1 for the positions
  // of a synthetic history).
  const std::vector<int32_t>& tokens() const { return tokens_; }

  // Keeps a copy of the history in the engine's slow tier under `id` (1-128 characters of
  // A-Z a-z 0-9 . _ -), replacing an earlier entry of that id atomically: the full KV pages, and
  // a checksummed record of everything else the sequence needs to continue (model identity,
  // settings, tokens, the open page's cells, the policy's state: lsa's chunk keys, quest's key
  // bounds; the selection and cycle phase). The sequence itself goes on unchanged and may be
  // persisted again later. Call between decode() calls. Costs one read and one write of every
  // full page. Throws Error for a contiguous cache, the ram tier (nothing outlives the
  // process), oracle:F (its trace lives outside the sequence), a bad id, or a store failure
  // (the previous entry of `id`, if any, is then unchanged). Accounting (lsa_stats) is not
  // kept: an attached sequence counts from zero.
  void persist(const std::string& id) const;

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
  friend class ForwardPass;  // advances n_past_ and tokens_
  void attach(const std::string& id);  // SequenceOptions::attach
  // Takes the backend (`paged`: the same object when it is the paged runtime, else nullptr) and
  // reserves its bytes against the engine's budget.
  void adopt(std::unique_ptr<KvBackend> kv, const PagedKv* paged);
  Engine* engine_;
  std::unique_ptr<KvBackend> kv_;
  const PagedKv* paged_ = nullptr;  // kv_ when it is the paged runtime
  uint64_t reserved_bytes_ = 0;
  int64_t n_past_ = 0;
  bool prompt_open_ = false;
  std::vector<int32_t> tokens_;  // [n_past_]
};

}  // namespace flashmem
