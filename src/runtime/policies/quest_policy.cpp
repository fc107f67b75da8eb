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

// Element limits of the saved state: bounds of 2^24 pages (a 1G-token context at 64-token pages),
// which also bounds the read counts and a layer's chosen pages.
constexpr uint64_t kMaxSavedPages = uint64_t{1} << 24;

void QuestPolicy::save_state(ByteWriter& out) const {
  PagePolicy::save_state(out);
  out.put_array(std::span<const float>(key_bounds_.values()));
  out.put_array(std::span<const float>(cycle_reads_));
  for (const std::vector<int64_t>& pages : layer_pages_) out.put_array(std::span<const int64_t>(pages));
}

void QuestPolicy::load_state(ByteReader& in) {
  PagePolicy::load_state(in);
  const uint64_t page_floats = 2 * static_cast<uint64_t>(layout_.n_layers * shape_.n_kv_heads * shape_.head_dim);
  key_bounds_.set_values(in.get_array<float>("quest key bounds", kMaxSavedPages * page_floats));
  cycle_reads_ = in.get_array<float>("quest read counts", kMaxSavedPages);
  for (std::vector<int64_t>& pages : layer_pages_) pages = in.get_array<int64_t>("quest layer pages", kMaxSavedPages);
}

}  // namespace flashmem
