// The LSA runtime's KV backend: paged two-tier KV (KvStore + ResidentPool), a selection policy
// run at cycle boundaries (right after the prompt and every tau decode steps), and, for `lsa`,
// the Memory Indexer scoring every index chunk of the history.
//
// Prompt: every page is written to the store; prompt attention reads what it needs (earlier
// pages straight from the store, the open page from its cell, the batch's rows from staging). Decode: attention reads only the
// pool's resident pages (sink + selection + recency tail + open page); a new selection is
// recalled by the pool's background worker while decoding continues, and a step waits only for
// pages that are not there yet.
#pragma once
#include <memory>
#include <string>
#include <vector>

#include "indexer/indexer_model.h"
#include "kv/kv_store.h"
#include "kv/resident_pool.h"
#include "model/kv_backend.h"
#include "model/model.h"
#include "select/policy.h"

namespace flashmem {

struct PagedKvOptions {
  std::string policy = "full";  // see select/policy.h
  double budget = -1;           // resident fraction cap (sink and tail count); < 0: policy's own
  int64_t page_tokens = 64;
  int64_t sink_pages = 1;
  int64_t recent_pages = 2;     // raised to cover tau decode steps (see tail_pages())
  int64_t tau = 64;             // decode steps per selection cycle (the indexer's lookahead)
  std::string store = "ram";    // "ram" | "disk:PATH" (PATH: a directory or file name prefix)
  std::shared_ptr<const IndexerModel> indexer;  // required by `lsa`
  uint64_t seed = 0;            // random:F
};

// Accounting of one sequence (DESIGN.md / docs/BENCHMARKS.md field names).
struct LsaStats {
  uint64_t full_kv_bytes = 0;          // K+V of every committed position
  uint64_t resident_kv_bytes_avg = 0;  // pool cells holding pages, averaged over commits
  uint64_t resident_kv_bytes_peak = 0;
  double resident_fraction_avg = 0;    // resident / full, averaged over decode steps
  uint64_t attn_bytes_per_step = 0;    // K+V bytes decode attention read per step (average)
  uint64_t recall_bytes_total = 0;
  uint64_t recall_misses = 0;
  int64_t cycles = 0;
  double indexer_ms_per_cycle = 0;     // selection time per cycle (scoring incl. for lsa)
  double recall_wait_ms = 0;           // time decode waited for resident pages
};

class PagedKv final : public KvBackend {
 public:
  // capacity: maximum positions (prompt + generation). Throws Error on bad options (unknown
  // policy, lsa without indexer, indexer not matching the model, unusable store path).
  PagedKv(const Model& model, int64_t capacity, DType type, const PagedKvOptions& options);
  ~PagedKv() override;

  DType type() const override { return type_; }
  int64_t capacity() const override { return capacity_; }
  void begin_batch(int64_t pos0, int64_t n) override;
  void store(int64_t layer, int64_t pos, const float* k, const float* v) override;
  std::span<const KvSpan> spans(int64_t layer) override;
  const std::vector<int64_t>& observed_layers() const override { return observed_layers_; }
  void observe_hidden(int64_t layer, int64_t pos, const float* hidden) override;
  void end_batch(bool is_prompt_end) override;
  void reset() override;
  void fill_synthetic(int64_t n, uint64_t seed) override;

  LsaStats stats() const;
  const SelectionPolicy& policy() const { return *policy_; }
  const std::vector<int64_t>& selection() const { return selection_; }
  // Pages the last decode step's attention read (ascending; the step's own position excluded).
  const std::vector<int64_t>& last_read_pages() const { return last_read_pages_; }

 private:
  void run_cycle();
  int64_t tail_pages() const;  // effective recency tail: recent_pages, or more to cover tau
  std::vector<float> lsa_page_scores(int64_t n_pages);

  const ModelConfig& config_;
  DType type_;
  int64_t capacity_;
  PagedKvOptions options_;
  PageLayout layout_;
  std::unique_ptr<KvStore> store_;
  std::unique_ptr<ResidentPool> pool_;
  std::unique_ptr<SelectionPolicy> policy_;
  double budget_fraction_ = 1.0;

  // Batch state.
  int64_t pos0_ = 0, n_ = 0;
  bool decoding_ = false;  // after the prompt: attention reads only resident pages
  int64_t decode_steps_ = 0;
  ResidentView view_;                          // decode: the resident pages of this step
  std::vector<AlignedBytes> prompt_pages_;     // prompt, disk store: copies of its full pages
  std::vector<std::vector<KvSpan>> spans_;     // [n_layers] spans of this batch
  // This batch's own rows, staged until end_batch() hands them to the pool page by page (so a
  // batch may cross page ends and batching stays exactly that of the contiguous cache).
  std::vector<uint8_t> staged_;                // [n_layers, 2, n, kv_dim] in type_
  std::vector<int64_t> selection_;
  std::vector<int64_t> last_read_pages_;

  // Indexer state (lsa).
  std::vector<int64_t> observed_layers_;       // backbone ids of the indexer's target layers
  std::vector<std::vector<float>> chunk_sum_;  // [n_target][D] running sum of the open chunk
  std::vector<std::vector<float>> last_hidden_;  // [n_target][D] latest hidden per target
  std::vector<std::vector<uint8_t>> keys_;     // [n_target][n_chunks * 132]
  int64_t last_pos_ = 0;

  // Accounting.
  int64_t cycles_ = 0;
  double cycle_seconds_ = 0, wait_seconds_ = 0;
  double resident_fraction_sum_ = 0;
  uint64_t attn_bytes_sum_ = 0;
};

}  // namespace flashmem
