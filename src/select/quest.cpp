#include "select/quest.h"

#include <algorithm>
#include <cmath>
#include <numeric>

#include "tensor/box_dot.h"
#include "util/error.h"

namespace flashmem {

void PageKeyBounds::set_values(std::vector<float> values) {
  if (values.size() % page_floats() != 0)
    fail("saved quest key bounds of {} floats are not whole pages of {}", values.size(), page_floats());
  bounds_ = std::move(values);
}

void PageKeyBounds::add_key(int64_t page, int64_t layer, const float* k) {
  const size_t need = static_cast<size_t>(page + 1) * page_floats();
  if (bounds_.size() < need) {
    const size_t old = bounds_.size();
    bounds_.resize(need);
    // Empty bounds: min = +inf, max = -inf, so the first key sets both.
    for (size_t i = old; i < need; i += 2 * static_cast<size_t>(kv_dim_)) {
      std::fill_n(bounds_.begin() + static_cast<std::ptrdiff_t>(i), kv_dim_, INFINITY);
      std::fill_n(bounds_.begin() + static_cast<std::ptrdiff_t>(i) + kv_dim_, kv_dim_, -INFINITY);
    }
  }
  float* lo = const_cast<float*>(at(page, layer));
  float* hi = lo + kv_dim_;
  for (int64_t d = 0; d < kv_dim_; ++d) {
    lo[d] = std::min(lo[d], k[d]);
    hi[d] = std::max(hi[d], k[d]);
  }
}

void quest_page_scores(const PageKeyBounds& bounds, int64_t layer, const QuestShape& shape,
                       const float* q, int64_t n_rows, std::span<const int64_t> pages,
                       std::span<float> scores) {
  const int64_t hd = shape.head_dim, group = shape.n_heads / shape.n_kv_heads;
  const size_t n = pages.size();
  std::fill(scores.begin(), scores.end(), -INFINITY);
  if (n == 0) return;
  std::vector<float> ub(n);  // [pages] bound of one query head
  for (int64_t row = 0; row < n_rows; ++row) {
    for (int64_t h = 0; h < shape.n_heads; ++h) {
      const float* qh = q + (row * shape.n_heads + h) * hd;
      const int64_t off = (h / group) * hd;
      float best = -INFINITY;
      for (size_t i = 0; i < n; ++i) {
        ub[i] = box_dot_max(qh, bounds.min(pages[i], layer) + off, bounds.max(pages[i], layer) + off, hd);
        best = std::max(best, ub[i]);
      }
      for (size_t i = 0; i < n; ++i) scores[i] = std::max(scores[i], ub[i] - best);
    }
  }
}

std::vector<int64_t> top_pages(std::span<const int64_t> pages, std::span<const float> scores, int64_t k) {
  std::vector<size_t> order(pages.size());
  std::iota(order.begin(), order.end(), size_t{0});
  const auto keep = static_cast<size_t>(std::clamp<int64_t>(k, 0, static_cast<int64_t>(pages.size())));
  std::partial_sort(order.begin(), order.begin() + static_cast<std::ptrdiff_t>(keep), order.end(),
                    [&](size_t a, size_t b) {
                      return scores[a] > scores[b] || (scores[a] == scores[b] && pages[a] > pages[b]);
                    });
  std::vector<int64_t> out;
  for (size_t i = 0; i < keep; ++i) out.push_back(pages[order[i]]);
  std::sort(out.begin(), out.end());
  return out;
}

}  // namespace flashmem
