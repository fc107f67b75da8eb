// flashmem's library API: one Engine (the model, its tokenizer, the thread pool, an optional
// Memory Indexer, the slow KV tier and the resident-KV budget) serving many caller-owned
// Sequences (include/flashmem/sequence.h), decoded together in batches.
//
// A batch mixes prompt chunks and single decode tokens of several sequences. One forward pass
// reads every weight matrix once for all the batch's single tokens (matvec_batch) and once per
// prompt chunk (the GEMM), and runs attention per sequence over its own resident KV spans.
// Each sequence's logits are bit-identical to decoding it alone: a prompt is cut into the same
// chunks of max_batch tokens, and a single token's row goes through the same per-row arithmetic
// as matvec (tests/unit/test_engine_batch.cpp).
//
// Threads: an Engine and its Sequences are used from one thread at a time (the caller's
// scheduler thread); the engine's pool parallelises inside each pass. Several engines may share
// a Model.
#pragma once
#include <cstdint>
#include <memory>
#include <mutex>
#include <span>
#include <string>
#include <vector>

#include "flashmem/sequence.h"
#include "indexer/indexer_model.h"
#include "model/model.h"
#include "tokenizer/tokenizer.h"
#include "util/error.h"
#include "util/thread_pool.h"

namespace flashmem {

class ForwardPass;

struct EngineOptions {
  int n_threads = 0;  // 0 = all hardware threads
  // A prompt is processed in chunks of at most this many tokens; a pass holds every single
  // decode token of its batch plus prompt chunks up to this many rows. 256 rows keep the GEMM's
  // weight panels reused across enough tokens to be compute-bound, while the activations of a
  // chunk (256 · ff_dim floats, 2 MiB for the 125M model) stay small.
  int64_t max_batch = 256;
  // The slow tier every paged sequence writes its pages to: "ram" (a RAM mirror) or "disk:DIR"
  // (one file per sequence inside DIR, or a file name that does not exist yet for a single
  // sequence). Sequences with the plain contiguous cache do not use it.
  std::string kv_store = "ram";
  // Bytes of resident KV cells all live sequences may reserve together; 0 = no limit.
  uint64_t kv_budget_bytes = 0;
  // How Engine::load brings the weights into memory (model/model.h).
  WeightMemory weight_memory = WeightMemory::kMap;
};

// Wall time spent in each part of the forward pass (seconds, accumulated over passes).
struct ForwardTimes {
  double matmul = 0;     // weight matrix products (the bandwidth-bound part of decode)
  double attention = 0;  // QK, softmax, V (incl. KV writes)
  double other = 0;      // norms, RoPE, activations, embedding
};

// One sequence's share of a decode() call.
struct BatchItem {
  Sequence* sequence = nullptr;
  std::span<const int32_t> tokens;  // appended at positions [n_past, n_past + n), n >= 1
  // nullptr: no logits; otherwise [n_vocab] for the last token, or [n, n_vocab] with all_logits.
  float* logits = nullptr;
  bool all_logits = false;
  // A prompt may be fed over several decode() calls (a scheduler interleaving a long prompt with
  // other sequences' decode steps): true on every part but the last. The selection machinery of a
  // paged sequence then starts at the end of the last part, as for the whole prompt in one call;
  // parts of whole max_batch chunks from the prompt's start give the bits of one call.
  bool prompt_continues = false;
};

// The resident-KV budget as a scheduler sees it (bytes of KV cells the sequences reserve: a
// contiguous cache its whole capacity, a paged sequence its resident pool).
struct KvBudget {
  uint64_t limit = 0;     // EngineOptions::kv_budget_bytes (0 = none)
  uint64_t reserved = 0;  // reserved by the live sequences
  uint64_t resident = 0;  // of which hold pages now
  int64_t sequences = 0;  // live sequences
  // What a new sequence may still reserve (UINT64_MAX without a limit).
  uint64_t available() const;
};

// What a Sequence's constructor throws when the engine's KV budget cannot hold it now: a
// scheduler keeps the request waiting while needed() <= limit() (other sequences will release
// bytes) and refuses it when even an empty engine could not hold it.
class KvBudgetError : public Error {
 public:
  KvBudgetError(const std::string& message, uint64_t needed, uint64_t limit)
      : Error(message), needed_(needed), limit_(limit) {}
  uint64_t needed() const { return needed_; }  // bytes the sequence would reserve
  uint64_t limit() const { return limit_; }    // EngineOptions::kv_budget_bytes

 private:
  uint64_t needed_, limit_;
};

class Engine {
 public:
  // Throws Error on bad options (max_batch < 1, an unusable kv_store spec, thread start failure).
  Engine(std::shared_ptr<const Model> model, const EngineOptions& options);
  // Loads and validates a GGUF model (Error on anything malformed).
  static std::unique_ptr<Engine> load(const std::string& model_path, const EngineOptions& options);
  ~Engine();
  Engine(const Engine&) = delete;
  Engine& operator=(const Engine&) = delete;

  const Model& model() const { return *model_; }
  const std::shared_ptr<const Model>& shared_model() const { return model_; }
  const EngineOptions& options() const { return options_; }
  ThreadPool& pool() { return pool_; }
  // The model's tokenizer, built on first use from its GGUF metadata; Error if the file has no
  // usable vocabulary.
  const Tokenizer& tokenizer() const;
  // The Memory Indexer that `lsa` sequences score pages with (nullptr: none loaded).
  void set_indexer(std::shared_ptr<const IndexerModel> indexer) { indexer_ = std::move(indexer); }
  const std::shared_ptr<const IndexerModel>& indexer() const { return indexer_; }

  KvBudget kv_budget() const;

  // Deletes the sequence persisted under `id` (Sequence::persist) from the slow tier: its record
  // first (from then on it cannot be attached), then its pages. False when there was none.
  // Throws Error for a bad id or a tier that fails.
  bool forget_sequence(const std::string& id);
  // True when the slow tier holds a record persisted under `id` (readable or not: attaching a
  // damaged one is an Error). Throws Error for a bad id or a tier that fails.
  bool has_sequence(const std::string& id) const;
  // The model identity a persisted sequence records (model/model_identity.h).
  uint64_t model_id() const { return model_id_; }

  // One or more forward passes over `batch` (each sequence at most once; items with no tokens
  // are refused). Every sequence's tokens are checked (ids in the vocabulary, capacity) before
  // anything runs. Throws Error; a failed pass leaves the n_past of every sequence whose pass
  // did not complete unchanged (its KV backend should then be reset).
  void decode(std::span<const BatchItem> batch);
  // decode() of one sequence.
  void forward(Sequence& sequence, std::span<const int32_t> tokens, float* logits, bool all_logits);

  const ForwardTimes& times() const { return times_; }
  void reset_times() { times_ = ForwardTimes{}; }

 private:
  friend class Sequence;
  void admit(Sequence* sequence, uint64_t reserved_bytes);  // KvBudgetError when over the budget
  void release(Sequence* sequence);

  std::shared_ptr<const Model> model_;
  uint64_t model_id_ = 0;
  EngineOptions options_;
  ThreadPool pool_;
  std::shared_ptr<const IndexerModel> indexer_;
  std::unique_ptr<ForwardPass> pass_;
  ForwardTimes times_;
  mutable std::once_flag tokenizer_once_;
  mutable std::unique_ptr<Tokenizer> tokenizer_;
  mutable std::mutex sequences_mutex_;  // the budget may be read from a metrics thread
  std::vector<std::pair<Sequence*, uint64_t>> sequences_;  // live sequences and their reservations
};

}  // namespace flashmem
