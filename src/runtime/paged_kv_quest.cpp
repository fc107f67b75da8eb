// PagedKv's per-step reads (quest:K, see the tier mapping in runtime/paged_kv.h): per layer the
// sink, the recency tail and the middle pages the policy chose for the layer's queries
// (runtime/policies/quest_policy.h), each from its pool cell when resident, else that layer of
// it from the store.
#include <algorithm>
#include <cstring>

#include "runtime/paged_kv.h"
#include "tensor/kernels.h"
#include "util/error.h"

namespace flashmem {

void PagedKv::begin_quest_step() {
  step_views_.clear();  // leases left by a step that stopped on an error (else already empty)
  step_data_.clear();
  layer_reads_.clear();
  store_pages_.clear();
  step_chosen_.clear();
  miss_used_ = 0;
  quest_step_bytes_ = 0;
  // Pinned pages (sink, tail, open page, the pool's selection) are already leased in view_.
  for (const PageView& p : view_.pages()) step_data_[p.page] = p.data;
}

const uint8_t* PagedKv::resident_page_data(int64_t page) {
  if (const auto it = step_data_.find(page); it != step_data_.end()) return it->second;
  // Resident but not pinned (kept by the pool's LRU): lease it for the rest of the step.
  ResidentView leased = pool_->acquire(page);
  if (leased.pages().empty()) return nullptr;
  const uint8_t* data = leased.pages().front().data;
  step_views_.push_back(std::move(leased));
  step_data_[page] = data;
  return data;
}

const uint8_t* PagedKv::quest_layer_data(int64_t page, int64_t layer) {
  const int64_t key = page * config_.n_layers + layer;
  if (const auto it = layer_reads_.find(key); it != layer_reads_.end()) return it->second;
  if (const uint8_t* data = resident_page_data(page)) return data + layout_.k(layer);
  // Not resident: a synchronous read of this layer's K and V from the slow tier, inside the step.
  const uint8_t* blocks = nullptr;
  if (store_->pages_in_place()) {
    const uint8_t* data = store_->page_in_place(page);  // mapped like the pool's zero-copy mode
    if (data == nullptr) fail("KV page {} is missing from the store", page);
    blocks = data + layout_.k(layer);
  } else {
    if (miss_used_ == miss_layers_.size()) {
      miss_layers_.push_back(allocate_aligned_bytes(layout_.layer_bytes()));
      if (!miss_layers_.back()) fail("out of memory reading KV page {} from the store", page);
    }
    uint8_t* dst = miss_layers_[miss_used_++].get();
    read_store_layer(page, layer, dst);  // on a miss the step stops; nothing was read from dst
    blocks = dst;
  }
  store_pages_.push_back(page);  // counted once per step in end_quest_step()
  sync_read_bytes_ += layout_.layer_bytes();
  layer_reads_[key] = blocks;
  return blocks;
}

void PagedKv::observe_queries(int64_t layer, const float* q, int64_t n) {
  const int64_t open = layout_.page_of(pos0_);
  const PageGeometry g{open + 1, options_.sink_pages, tail_pages()};
  const std::vector<int64_t> chosen = policy_->choose_step_pages(layer, q, n, g);
  step_chosen_.insert(step_chosen_.end(), chosen.begin(), chosen.end());

  std::vector<int64_t> pages = g.fixed_pages();
  pages.insert(pages.end(), chosen.begin(), chosen.end());
  std::sort(pages.begin(), pages.end());
  std::vector<KvSpan>& spans = spans_[static_cast<size_t>(layer)];
  const KvSpan staged = spans.back();  // the batch's own rows, pushed last by begin_batch()
  spans.clear();
  int64_t tokens = 0;
  for (int64_t p : pages) {
    const int64_t n_tokens = std::min(options_.page_tokens, pos0_ - layout_.first_pos(p));
    if (n_tokens <= 0) continue;
    const uint8_t* k = quest_layer_data(p, layer);  // [K block][V block] of this layer
    spans.push_back({layout_.first_pos(p), n_tokens, k, k + layout_.v_offset()});
    tokens += n_tokens;
  }
  spans.push_back(staged);
  // Bytes of this layer: K and V of every token read, plus the bounds scanned (min and max, f32,
  // of every complete middle page).
  const auto candidates = static_cast<uint64_t>(g.n_middle_pages());
  quest_step_bytes_ += layout_.blocks_per_layer() * static_cast<uint64_t>(tokens) * layout_.row_bytes() +
                       candidates * 2 * static_cast<uint64_t>(config_.kv_dim()) * sizeof(float);
}

void PagedKv::end_quest_step() {
  // Read: the fixed pages and every layer's choice (pinned selection pages that no layer chose
  // were leased, not read).
  const int64_t open = layout_.page_of(pos0_);
  const PageGeometry g{open + 1, options_.sink_pages, tail_pages()};
  std::vector<int64_t> read = g.fixed_pages();
  read.insert(read.end(), step_chosen_.begin(), step_chosen_.end());
  std::sort(read.begin(), read.end());
  read.erase(std::unique(read.begin(), read.end()), read.end());
  std::erase_if(read, [&](int64_t p) { return layout_.first_pos(p) >= pos0_; });
  last_read_pages_ = std::move(read);
  // One recall miss per page read from the store in this step (the unit of recall_misses).
  std::sort(store_pages_.begin(), store_pages_.end());
  sync_reads_ += static_cast<uint64_t>(std::unique(store_pages_.begin(), store_pages_.end()) - store_pages_.begin());
  store_pages_.clear();
  step_views_.clear();  // leases end before end_batch() commits (commit may need their cells)
  step_data_.clear();
  layer_reads_.clear();
  step_chosen_.clear();
}

}  // namespace flashmem
