// Quest (training-free, per step and per layer): every complete KV page keeps the elementwise
// min and max of its keys; at each decode step each layer reads the top-K pages by the upper
// bound of q·k those give (tensor/box_dot.h), plus the always-read sink and recency tail.
//
// Pages are chosen per *layer* (all heads of a layer read the same pages, because attention
// reads one span list per layer). A page's layer score aggregates its per-head bounds:
//   score(p) = max over query heads h of ( ub(h, p) − max over candidate pages p' of ub(h, p') )
// Why relative to each head's best page: heads have very different logit scales, and softmax
// mass depends on a logit's gap to the head's largest logits, so gaps are comparable across
// heads where raw bounds are not. Why max over heads: a page one head needs must be read, since
// every head of the layer reads the same pages. The 1/sqrt(head_dim) attention scale is left out
// (it does not change the order). With a batch of several query rows the max also runs over rows.
#pragma once
#include <cstdint>
#include <span>
#include <vector>

namespace flashmem {

// Per page, per layer: elementwise min and max of the page's keys (exactly the values attention
// reads, i.e. after the cache's f16 rounding).
class PageKeyBounds {
 public:
  PageKeyBounds(int64_t n_layers, int64_t kv_dim) : n_layers_(n_layers), kv_dim_(kv_dim) {}

  void clear() { bounds_.clear(); }
  // Widens `page`'s bounds in `layer` to cover key row k [kv_dim] (pages grow as needed).
  void add_key(int64_t page, int64_t layer, const float* k);
  int64_t n_pages() const { return static_cast<int64_t>(bounds_.size() / page_floats()); }
  // [kv_dim] each; page < n_pages().
  const float* min(int64_t page, int64_t layer) const { return at(page, layer); }
  const float* max(int64_t page, int64_t layer) const { return at(page, layer) + kv_dim_; }
  // Metadata bytes held: 2 · n_layers · kv_dim f32 per page. Why f32 and not f16: the bound must
  // stay a true bound of the stored keys without outward rounding; the cost is 8 bytes per
  // (layer, kv dim) per page = 1/page_tokens of an f16 page's K+V (1.6% at 64-token pages).
  uint64_t bytes() const { return bounds_.size() * sizeof(float); }
  // Every bound, [n_pages, n_layers, 2, kv_dim] (a persisted sequence's policy state).
  const std::vector<float>& values() const { return bounds_; }
  // Replaces every bound; Error unless the size is whole pages of this shape.
  void set_values(std::vector<float> values);

 private:
  size_t page_floats() const { return 2 * static_cast<size_t>(n_layers_ * kv_dim_); }
  const float* at(int64_t page, int64_t layer) const {
    return bounds_.data() + static_cast<size_t>(page) * page_floats() + 2 * static_cast<size_t>(layer * kv_dim_);
  }

  int64_t n_layers_, kv_dim_;
  std::vector<float> bounds_;  // [n_pages, n_layers, 2 (min, max), kv_dim]
};

struct QuestShape {
  int64_t n_heads = 0, n_kv_heads = 0, head_dim = 0;
};

// Layer scores (see the header comment) of `pages` for queries q [n_rows, n_heads, head_dim]
// (query head h uses kv head h / (n_heads / n_kv_heads)); scores: [pages.size()].
void quest_page_scores(const PageKeyBounds& bounds, int64_t layer, const QuestShape& shape,
                       const float* q, int64_t n_rows, std::span<const int64_t> pages,
                       std::span<float> scores);

// The k highest-scoring pages (ties: the newer page), ascending. k >= pages.size() keeps all.
std::vector<int64_t> top_pages(std::span<const int64_t> pages, std::span<const float> scores, int64_t k);

}  // namespace flashmem
