// The LSA runtime's KV backend: paged two-tier KV (KvStore + ResidentPool), a selection policy
// run at cycle boundaries (right after the prompt and every tau decode steps), and, for `lsa`,
// the Memory Indexer scoring every index chunk of the history.
//
// Prompt: every page is written to the store as it fills, and its cell is kept only as the
// policy's pool would keep it (sink, tail, budget), so prefill holds no more KV in memory than
// decode. Prompt attention reads every earlier page: with the ram store straight from its
// mirror; with any other store in windows (KvBackend::window) of prompt_window_bytes, each page
// from its pool cell if still resident, else by a per-layer read of the store into the window
// buffer. The open page comes from its cell, the batch's rows from staging.
// Decode: attention reads only the pool's resident pages (sink + selection + recency tail + open
// page); a new selection is recalled by the pool's background worker while decoding continues,
// and a step waits only for pages that are not there yet.
//
// Lookahead recall (lsa --lsa-prefetch K, 0 < K < tau): K decode steps before each boundary the
// policy chooses the next cycle's selection from what it has observed then (lsa: the latest
// hidden state and the chunk keys completed so far), and the pool prefetches its non-resident
// pages into spare cells (half the budget's selected pages more) while attention keeps reading
// the current selection; the boundary installs that selection, whose pages are then resident
// or in flight. The recency tail grows if needed to cover the tau + K steps a selection is read
// for. The cycle right after the prompt is chosen at once, as without K. Persisting a sequence
// inside those K steps drops the pending selection (the boundary chooses afresh, in the saving
// runtime too, so both continue alike). K = 0 is the plain path, bit for bit.
//
// quest:K maps onto the two tiers like this: every decode step, each layer reads the sink, the
// recency tail and its own top-K middle pages by key bounds (select/quest.h). A chosen page is
// read from its pool cell when resident (pinned or still cached by the LRU), else synchronously
// from the store, and then only the choosing layer's K and V blocks (the store keeps one
// verified segment per layer: PageLayout::layer_bytes() per read). A page read from the store
// in a step counts once as a recall miss (sync_reads), whatever number of its layers were read;
// recalled bytes count every layer read. At each cycle boundary the pool's selection becomes
// the pages read most often in the ending cycle (up to K, or the --budget cap), recalled in the
// background like any other selection; the pool holds its cell budget (sink + tail + open page
// + K, or the --budget / --budget-tokens cap) and the LRU keeps recently dropped pages.
//
// Budget: --budget F caps the resident pages at F of the context's pages, --budget-tokens N at
// ceil(N / page_tokens) pages whatever the context (a fixed memory per sequence); either counts
// sink and tail and never goes below sink + tail + the open page. The pool's cells are that cap
// for the largest context plus the open page.
//
// The policy is an object (runtime/policies/page_policy.h): PagedKv forwards to it what it
// declares it observes (hidden states, K rows, queries, attention) and asks it for pages.
//
// oracle:F reads the true future attention mass of each cycle from an OracleTrace recorded by a
// first, full-attention pass over the same tokens (runtime/oracle.h).
#pragma once
#include <memory>
#include <string>
#include <unordered_map>
#include <vector>

#include "kv/kv_store.h"
#include "kv/resident_pool.h"
#include "model/kv_backend.h"
#include "model/model.h"
#include "runtime/paged_kv_options.h"
#include "runtime/policies/page_policy.h"
#include "runtime/policies/quest_policy.h"
#include "runtime/sequence_record.h"

namespace flashmem {

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
  double recall_wait_first_ms = 0;     // of which in the first decode step (the prompt's selection,
                                       // which no decode can hide): the rest is the steady state
  uint64_t prefetched = 0;             // --lsa-prefetch: recalls started ahead of their cycle
  uint64_t prefetch_dropped = 0;       // --lsa-prefetch: pages left to the boundary (no spare cell)
  uint64_t page_meta_bytes = 0;        // quest: per-page key min/max held (always resident)
  uint64_t sync_reads = 0;             // quest: pages read from the store inside a step, once per
                                       // step and page (in recall_misses)
  uint64_t sync_read_bytes = 0;        // quest: bytes of those reads, layer_bytes() per (page, layer)
                                       // (in recall_bytes_total)
  int64_t fallback_cycles = 0;         // lsa --lsa-fallback on: cycles the safety net widened (in cycles)
};

// What a persisted sequence of `options` (after fit_to_context) must match on attach: KV type,
// page geometry, policy options, the lsa indexer (PagedKv::persist_settings).
PersistSettings persist_settings(const ModelConfig& config, DType type, const PagedKvOptions& options);

class PagedKv final : public KvBackend, private AttentionObserver {
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
  const std::vector<int64_t>& observed_layers() const override { return policy_->hidden_layers(); }
  int64_t windowed_keys() const override { return windowed_; }
  int64_t window_keys() const override { return window_keys_; }
  std::span<const KvSpan> window(int64_t layer, int64_t first) override;
  void observe_hidden(int64_t layer, int64_t pos, const float* hidden) override;
  void end_batch(bool is_prompt_end) override;
  void reset() override;
  void fill_synthetic(int64_t n, uint64_t seed) override;
  bool wants_queries() const override { return decoding_ && policy_->pages_per_step() > 0; }
  void observe_queries(int64_t layer, const float* q, int64_t n) override;
  // oracle:F first pass (full with an oracle trace): records decode attention per page.
  AttentionObserver* attention_observer() override {
    return decoding_ && policy_->observes_attention() ? this : nullptr;
  }

  LsaStats stats() const;
  // The resident fraction after each decode step of this sequence ([decode steps]; the same
  // quantity resident_fraction_avg averages). Cleared by reset().
  const std::vector<float>& resident_fraction_steps() const { return resident_fraction_steps_; }
  const SelectionPolicy& policy() const { return policy_->chooser(); }
  const PagePolicy& page_policy() const { return *policy_; }
  // The policy as quest:K, or nullptr for any other policy.
  const QuestPolicy* quest() const { return policy_->quest(); }
  const std::vector<int64_t>& selection() const { return selection_; }
  // --lsa-prefetch: the selection chosen ahead of the next boundary, which installs it; empty
  // when none is pending.
  const std::vector<int64_t>& next_selection() const { return next_selection_; }
  // The page scores the last cycle's selection used ([n_pages]; empty for unscored policies):
  // lsa page scores, oracle masses, quest read counts.
  const std::vector<float>& last_page_scores() const { return last_page_scores_; }
  // Pages the last decode step's attention read (ascending; the step's own position excluded).
  // quest: the union over layers. Valid after end_batch().
  const std::vector<int64_t>& last_read_pages() const { return last_read_pages_; }
  // quest: the middle pages each layer read in the last decode step ([n_layers], ascending).
  // Throws Error for another policy (as key_bounds()).
  const std::vector<std::vector<int64_t>>& last_quest_pages() const;
  // quest: the per-page key bounds (tests, diagnostics).
  const PageKeyBounds& key_bounds() const;
  // The two tiers of this sequence (tests, diagnostics: which pages are resident, where a disk
  // store's file is). Replaced by reset().
  const KvStore& kv_store() const { return *store_; }
  const ResidentPool& resident_pool() const { return *pool_; }

  // ---- Persistence (Sequence::persist / SequenceOptions::attach; between batches only).
  // What an attached record must match: KV type, page geometry, policy options, indexer (and the
  // capacity once the prompt has ended, checked by restore()).
  PersistSettings persist_settings() const;
  // Copies the full pages into a new generation of entry `id` of the slow tier and fills the
  // runtime's part of `record` (settings, generation, decoding state, selection, open page, page
  // digests, policy state). Returns the entry's pages, removed with the returned store unless
  // the caller calls keep_pages() on it (after writing the record). Throws Error: ram tier,
  // oracle policies, a page the store cannot read.
  std::unique_ptr<KvStore> save(const std::string& id, SequenceRecord& record);
  // Takes over a record on a runtime that has committed nothing: its pages are read from entry
  // `id` (each verified) and written to this runtime's own new store, so the entry is never
  // written and several sequences may attach it at once. Throws Error when the settings differ,
  // n_past exceeds the capacity, or a page is missing or damaged.
  void restore(const std::string& id, const SequenceRecord& record);

 private:
  bool wants_attention(int64_t pos) const override { return true; }
  void observe_attention(int64_t layer, int64_t pos, const float* probs, int64_t n_heads,
                         int64_t n_keys) override;
  void run_cycle();
  // The policy's selection for cycle cycles_ from what it has observed so far; scores [n_pages].
  void choose_selection(std::vector<int64_t>& pages, std::vector<float>& scores);
  // --lsa-prefetch: chooses the next cycle's selection now and starts recalling it.
  void prefetch_next_cycle();
  int64_t tail_pages() const;  // effective recency tail: recent_pages, or more to cover tau
  // The --budget / --budget-tokens cap in pages for `n_pages` pages of context; -1 when neither
  // is set (the policy's own). At least the fixed pages (sink + tail + open page).
  int64_t budget_pages(int64_t n_pages) const;
  [[noreturn]] void fail_store_write(StoreStatus status) const;  // Error naming the store's path
  const QuestPolicy& quest_policy() const;  // quest(), or Error
  void begin_quest_step();
  void end_quest_step();
  // Layer `layer` of page `page` for this step: its K block; V follows at + block_bytes().
  const uint8_t* quest_layer_data(int64_t page, int64_t layer);
  // The whole page from its pool cell (pinned, or leased for the step), or nullptr if not resident.
  const uint8_t* resident_page_data(int64_t page);
  // Layer `layer` of page `page` (its K block, then V) read from the store into dst
  // [layout_.layer_bytes()]; throws Error when the store misses.
  void read_store_layer(int64_t page, int64_t layer, uint8_t* dst);

  const ModelConfig& config_;
  DType type_;
  int64_t capacity_;
  PagedKvOptions options_;
  PageLayout layout_;
  std::unique_ptr<KvStore> store_;
  std::unique_ptr<ResidentPool> pool_;
  std::unique_ptr<PagePolicy> policy_;
  double budget_fraction_ = 1.0;
  int64_t budget_token_pages_ = 0;  // ceil(budget_tokens / page_tokens); 0: no token budget
  int64_t prefetch_lead_ = 0;  // --lsa-prefetch K (0: off, or tau cut below K by the context)

  // Batch state.
  int64_t pos0_ = 0, n_ = 0;
  bool decoding_ = false;  // after the prompt: attention reads only resident pages
  int64_t decode_steps_ = 0;
  ResidentView view_;                          // decode: the resident pages of this step
  // Prompt with a store other than ram: the committed pages [0, windowed_) are read in windows.
  int64_t windowed_ = 0;
  int64_t window_keys_ = 0;                    // positions per window (whole attention chunks)
  AlignedBytes window_buffer_;                 // [window_slots_, layer_bytes] pages read this window
  int64_t window_slots_ = 0;                   // pages one window can overlap
  std::vector<KvSpan> window_spans_;           // spans of the current window
  std::vector<ResidentView> window_views_;     // leases on the current window's resident pages
  std::vector<std::vector<KvSpan>> spans_;     // [n_layers] spans of this batch
  // This batch's own rows, staged until end_batch() hands them to the pool page by page (so a
  // batch may cross page ends and batching stays exactly that of the contiguous cache).
  std::vector<uint8_t> staged_;                // [n_layers, 2 (1: values_in_keys), n, kv_dim] in type_
  std::vector<int64_t> selection_;
  std::vector<float> last_page_scores_;        // [n_pages] scores of the last selection
  // --lsa-prefetch: the next cycle's selection, chosen prefetch_lead_ steps before its boundary.
  bool next_ready_ = false;
  std::vector<int64_t> next_selection_;
  std::vector<float> next_page_scores_;        // [n_pages then]
  std::vector<int64_t> last_read_pages_;

  // Per-step reads (quest:K): the policy chooses the pages, PagedKv reads them.
  std::unordered_map<int64_t, const uint8_t*> step_data_;  // page -> resident bytes this step
  std::vector<ResidentView> step_views_;         // leases on unpinned resident pages read
  // page * n_layers + layer -> that layer's K block read from the store this step (V follows).
  std::unordered_map<int64_t, const uint8_t*> layer_reads_;
  std::vector<int64_t> store_pages_;             // page of every store read this step
  // A store without pages in place (disk): per-step scratch of synchronous layer reads,
  // [layer_bytes] each; at most n_layers * K per step, reused across steps.
  std::vector<AlignedBytes> miss_layers_;
  size_t miss_used_ = 0;                         // miss_layers_ used in this step
  std::vector<int64_t> step_chosen_;             // middle pages any layer chose this step
  uint64_t quest_step_bytes_ = 0;
  uint64_t sync_reads_ = 0, sync_read_bytes_ = 0;

  // Accounting.
  int64_t cycles_ = 0;
  double cycle_seconds_ = 0, wait_seconds_ = 0, first_wait_seconds_ = 0;
  double resident_fraction_sum_ = 0;
  double resident_bytes_sum_ = 0;  // pool bytes holding pages, summed over decode steps
  std::vector<float> resident_fraction_steps_;  // [decode steps]
  uint64_t attn_bytes_sum_ = 0;
};

}  // namespace flashmem
