#include "runtime/policies/quest_policy.h"

#include "tensor/kernels.h"

namespace flashmem {

QuestPolicy::QuestPolicy(std::unique_ptr<SelectionPolicy> chooser, const PolicyContext& ctx)
    : PagePolicy(std::move(chooser)),
      kv_type_(ctx.kv_type),
      layout_(ctx.layout),
      shape_{ctx.model.n_heads, ctx.model.n_kv_heads, ctx.model.head_dim},
      key_bounds_(ctx.model.n_layers, ctx.model.kv_dim()) {}

void QuestPolicy::observe_key(int64_t pos, int64_t layer, const uint8_t* k_row) {
  // Bounds of the values attention reads: the cache's rows (f16, f32 or q8_0) as f32.
  key_row_.resize(static_cast<size_t>(layout_.kv_dim));
  dequantize_row(kv_type_, k_row, key_row_.data(), layout_.kv_dim);
  key_bounds_.add_key(layout_.page_of(pos), layer, key_row_.data());
}

std::vector<int64_t> QuestPolicy::choose_step_pages(int64_t layer, const float* q, int64_t n,
                                                    const PageGeometry& g) {
  std::vector<int64_t> candidates;  // complete middle pages, all with bounds
  for (int64_t p = g.sink_pages; p < g.first_tail_page(); ++p) candidates.push_back(p);
  scores_.resize(candidates.size());
  quest_page_scores(key_bounds_, layer, shape_, q, n, candidates, scores_);
  std::vector<int64_t>& chosen = layer_pages_[static_cast<size_t>(layer)];
  chosen = top_pages(candidates, scores_, pages_per_step());
  if (cycle_reads_.size() < static_cast<size_t>(g.n_pages)) cycle_reads_.resize(static_cast<size_t>(g.n_pages), 0.0f);
  for (int64_t p : chosen) cycle_reads_[static_cast<size_t>(p)] += 1.0f;
  return chosen;
}

std::vector<float> QuestPolicy::cycle_scores(const PageGeometry& g, int64_t cycle) {
  std::vector<float> scores = cycle_reads_;
  scores.resize(static_cast<size_t>(g.n_pages), 0.0f);
  std::fill(cycle_reads_.begin(), cycle_reads_.end(), 0.0f);
  return scores;
}

void QuestPolicy::reset() {
  key_bounds_.clear();
  cycle_reads_.clear();
  layer_pages_.assign(static_cast<size_t>(layout_.n_layers), {});
}

}  // namespace flashmem
