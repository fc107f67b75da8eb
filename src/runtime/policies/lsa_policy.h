// lsa as a policy object: the Memory Indexer over the hidden states of its target layers. Every
// index chunk of the history gets a compressed key (key tower on the chunk's mean hidden state);
// at each cycle boundary the query tower on the latest hidden state scores every chunk, and a
// page scores its best chunk ("max") or its count of chunks above the threshold ("count").
//
// Threads: the keys of the chunks a batch completed are computed at end_batch(), one (layer,
// chunk) key per task over PagedKvOptions::pool; the scoring's matrix products and chunk logits
// split over the same pool. Every key and logit is computed by exactly the code of the
// single-threaded path on its own inputs, so the results are bit-identical to pool == nullptr.
//
// Safety net (PolicySpec::lsa_fallback on): in a cycle where the indexer is unsure, i.e. no
// middle page passes the threshold or the middle pages' scores are flat (spread below
// kLsaFlatSpread), the threshold's choice is widened to the best-scored middle pages up to the
// budget (--budget or --budget-tokens, else kLsaFallbackFraction of the context) for that cycle
// only: a superset of what the threshold kept, ranked by the same scores. fallback_cycles()
// counts those cycles.
#pragma once
#include <vector>

#include "runtime/policies/page_policy.h"

namespace flashmem {

// Page scores whose spread (max - min over the middle pages) is below this are "flat": 0.05 is
// 5% of the sigmoid's range (max page score), and below one chunk for the count score, i.e. no
// ranking at all.
constexpr float kLsaFlatSpread = 0.05f;
// Resident fraction of a fallback cycle without --budget: the paper's 13.5% of the KV, the
// budget at which LSA is claimed to match full attention.
constexpr double kLsaFallbackFraction = 0.135;

class LsaPolicy final : public PagePolicy {
 public:
  // Throws Error without an indexer, or with one whose width or target layers do not match the
  // model, or whose layers have no key tower.
  LsaPolicy(std::unique_ptr<SelectionPolicy> chooser, const PolicyContext& ctx);

  void observe_hidden(int64_t layer, int64_t pos, const float* hidden) override;
  void end_batch() override;
  std::vector<float> cycle_scores(const PageGeometry& g, int64_t cycle) override;
  void reset() override;
  void fill_synthetic(int64_t n, uint64_t seed) override;
  std::vector<int64_t> select(const SelectionInput& input) override;
  int64_t fallback_cycles() const override { return fallback_cycles_; }
  void save_state(ByteWriter& out) const override;
  void load_state(ByteReader& in) override;

 private:
  // Computes the keys of pending_ chunks (over pool_) and appends them to keys_.
  void compute_pending_keys();

  std::shared_ptr<const IndexerModel> indexer_;
  int64_t dim_ = 0;            // model width D
  int64_t chunk_tokens_ = 0;
  int64_t page_tokens_ = 0;
  LsaPageScore page_score_;
  ThreadPool* pool_ = nullptr;
  std::vector<std::vector<float>> chunk_sum_;    // [n_target][D] running sum of the open chunk
  std::vector<std::vector<float>> last_hidden_;  // [n_target][D] latest hidden per target
  std::vector<std::vector<uint8_t>> keys_;       // [n_target][n_chunks * kCompressedKeyBytes]
  int64_t last_pos_ = 0;
  // Chunks completed in this batch whose keys are not computed yet, in completion order.
  struct PendingKey {
    size_t target = 0;         // index into hidden_layers()
    int64_t first_pos = 0;     // the chunk's first position
  };
  std::vector<PendingKey> pending_;
  std::vector<float> pending_means_;             // [pending_.size(), D] the chunks' mean hidden
  // The fallback's chooser (top-scored pages up to the budget); null with the fallback off.
  std::unique_ptr<SelectionPolicy> fallback_;
  int64_t fallback_cycles_ = 0;
};

// True when the indexer is unsure about the middle pages of `input` (see the file comment):
// none scores above kSelectThreshold, or their scores spread less than kLsaFlatSpread. False
// when there is no middle page.
bool lsa_unsure(const SelectionInput& input);

}  // namespace flashmem
