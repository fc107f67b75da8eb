#include "train/labels.h"

#include <algorithm>
#include <numeric>

#include "util/error.h"

namespace flashmem {

HeadReduce parse_head_reduce(std::string_view name) {
  if (name == "mean") return HeadReduce::kMean;
  if (name == "max") return HeadReduce::kMax;
  fail("head reduction must be mean or max, not '{}'", name);
}

std::string_view head_reduce_name(HeadReduce reduce) { return reduce == HeadReduce::kMean ? "mean" : "max"; }

void chunk_mass(const float* probs, int64_t n_heads, int64_t n_keys, int64_t chunk_tokens,
                HeadReduce reduce, std::vector<float>& mass) {
  const int64_t n_chunks = (n_keys + chunk_tokens - 1) / chunk_tokens;
  mass.assign(static_cast<size_t>(n_chunks), 0.0f);
  for (int64_t h = 0; h < n_heads; ++h) {
    const float* p = probs + h * n_keys;
    for (int64_t c = 0; c < n_chunks; ++c) {
      float m = 0.0f;
      for (int64_t t = c * chunk_tokens; t < std::min(n_keys, (c + 1) * chunk_tokens); ++t) m += p[t];
      float& out = mass[static_cast<size_t>(c)];
      out = reduce == HeadReduce::kMean ? out + m / static_cast<float>(n_heads) : std::max(out, m);
    }
  }
  if (reduce == HeadReduce::kMax) {
    const float total = std::accumulate(mass.begin(), mass.end(), 0.0f);
    if (total > 0.0f)
      for (float& m : mass) m /= total;
  }
}

void top_p_chunks(const std::vector<float>& mass, double top_p, std::vector<int32_t>& selected) {
  std::vector<int32_t> order(mass.size());
  std::iota(order.begin(), order.end(), 0);
  std::stable_sort(order.begin(), order.end(), [&](int32_t a, int32_t b) { return mass[a] > mass[b]; });
  const double total = std::accumulate(mass.begin(), mass.end(), 0.0);
  double covered = 0.0;
  const size_t first = selected.size();
  for (int32_t c : order) {
    if (covered >= top_p * total) break;
    selected.push_back(c);
    covered += mass[static_cast<size_t>(c)];
  }
  std::sort(selected.begin() + static_cast<std::ptrdiff_t>(first), selected.end());
}

LabelAccumulator::LabelAccumulator(const LabelOptions& options, int64_t n_label_layers)
    : options_(options), min_layers_(std::clamp<int64_t>(options.min_layers, 1, n_label_layers)) {
  if (!(options.top_p > 0.0 && options.top_p <= 1.0)) fail("--top-p must be in (0, 1], got {}", options.top_p);
  if (options.min_layers < 1) fail("--min-layers must be >= 1, got {}", options.min_layers);
  if (options.chunk_tokens < 1) fail("chunk_tokens must be >= 1");
}

void LabelAccumulator::add_layer(int64_t pos, const float* probs, int64_t n_heads, int64_t n_keys) {
  auto it = std::find_if(counts_.begin(), counts_.end(), [&](const auto& e) { return e.first == pos; });
  const int64_t n_chunks = (n_keys + options_.chunk_tokens - 1) / options_.chunk_tokens;
  if (it == counts_.end()) {
    counts_.emplace_back(pos, std::vector<int32_t>(static_cast<size_t>(n_chunks), 0));
    it = counts_.end() - 1;
  }
  chunk_mass(probs, n_heads, n_keys, options_.chunk_tokens, options_.reduce, mass_);
  selected_.clear();
  top_p_chunks(mass_, options_.top_p, selected_);
  for (int32_t c : selected_) ++it->second[static_cast<size_t>(c)];
  // Focused heads: does the layer's set contain the chunk a single head concentrates on?
  for (int64_t h = 0; h < n_heads; ++h) {
    chunk_mass(probs + h * n_keys, 1, n_keys, options_.chunk_tokens, HeadReduce::kMean, head_mass_);
    const auto best = std::max_element(head_mass_.begin(), head_mass_.end());
    if (*best <= 0.5f) continue;
    ++stats_.focused_heads;
    const auto c = static_cast<int32_t>(best - head_mass_.begin());
    stats_.focused_covered += std::binary_search(selected_.begin(), selected_.end(), c) ? 1 : 0;
  }
}

void LabelAccumulator::finish(int64_t pos, std::vector<int32_t>& indices, std::vector<int32_t>& scores,
                              int64_t sink_window, int64_t tail_window) {
  indices.clear();
  scores.clear();
  auto it = std::find_if(counts_.begin(), counts_.end(), [&](const auto& e) { return e.first == pos; });
  if (it == counts_.end()) return;
  const int64_t ct = options_.chunk_tokens;
  const int64_t sink = options_.exclude_sink > 0 ? options_.exclude_sink : sink_window;
  const int64_t tail = options_.exclude_tail > 0 ? options_.exclude_tail : tail_window;
  ++stats_.tokens;
  stats_.candidate_chunks += static_cast<int64_t>(it->second.size());
  for (size_t c = 0; c < it->second.size(); ++c) {
    const int32_t count = it->second[c];
    if (count < min_layers_) continue;
    const int64_t first = static_cast<int64_t>(c) * ct, last = first + ct - 1;
    const bool in_sink = last < sink;
    const bool in_tail = first > pos - tail;
    stats_.golden_in_sink += in_sink ? 1 : 0;
    stats_.golden_in_tail += in_tail && !in_sink ? 1 : 0;
    if ((in_sink && options_.exclude_sink > 0) || (in_tail && options_.exclude_tail > 0)) continue;
    indices.push_back(static_cast<int32_t>(c));
    scores.push_back(count);
    ++stats_.golden;
  }
  counts_.erase(it);
}

}  // namespace flashmem
