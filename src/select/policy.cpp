#include "select/policy.h"

#include <algorithm>
#include <cmath>
#include <numeric>
#include <sstream>

#include "indexer/scoring.h"
#include "util/error.h"

namespace flashmem {

int64_t PageGeometry::first_tail_page() const {
  // The open page is the last one; the tail is the recent_pages complete pages before it.
  return std::max(sink_pages, n_pages - 1 - recent_pages);
}

int64_t PageGeometry::n_middle_pages() const {
  return std::max<int64_t>(0, first_tail_page() - sink_pages);
}

std::vector<int64_t> PageGeometry::fixed_pages() const {
  std::vector<int64_t> pages;
  for (int64_t p = 0; p < std::min(sink_pages, n_pages); ++p) pages.push_back(p);
  for (int64_t p = first_tail_page(); p < n_pages; ++p) pages.push_back(p);
  return pages;
}

int64_t tail_pages_for(int64_t recent_pages, int64_t tau, int64_t page_tokens) {
  return std::max(recent_pages, (tau + page_tokens - 1) / page_tokens + 1);
}

int64_t budget_pages_for(const PageGeometry& g, double fraction) {
  const auto pages = static_cast<int64_t>(std::floor(fraction * static_cast<double>(g.n_pages)));
  return std::max<int64_t>(pages, static_cast<int64_t>(g.fixed_pages().size()));
}

int64_t budget_pages_capped(const PageGeometry& g, int64_t cap_pages) {
  return std::max(std::min(g.n_pages, cap_pages), static_cast<int64_t>(g.fixed_pages().size()));
}

void SelectionPolicy::set_state(const std::string& state) {
  if (!state.empty()) fail("policy {} keeps no state between cycles, but a saved state was given", name());
}

namespace {

// How many middle pages fit next to the fixed ones.
int64_t middle_allowance(const SelectionInput& in, double fraction) {
  const PageGeometry& g = in.geometry;
  int64_t budget = in.budget_pages >= 0 ? in.budget_pages : budget_pages_for(g, fraction);
  const auto fixed = static_cast<int64_t>(g.fixed_pages().size());
  return std::clamp<int64_t>(budget - fixed, 0, g.n_middle_pages());
}

std::vector<int64_t> merge_sorted(std::vector<int64_t> a, const std::vector<int64_t>& b) {
  a.insert(a.end(), b.begin(), b.end());
  std::sort(a.begin(), a.end());
  a.erase(std::unique(a.begin(), a.end()), a.end());
  return a;
}

class FullPolicy final : public SelectionPolicy {
 public:
  std::string name() const override { return "full"; }
  std::vector<int64_t> select(const SelectionInput& in) override {
    std::vector<int64_t> all(static_cast<size_t>(in.geometry.n_pages));
    std::iota(all.begin(), all.end(), 0);
    return all;
  }
};

// StreamingLLM: sink + recency tail only.
class WindowPolicy final : public SelectionPolicy {
 public:
  std::string name() const override { return "window"; }
  double default_fraction() const override { return 0.0; }
  std::vector<int64_t> select(const SelectionInput& in) override { return in.geometry.fixed_pages(); }
};

// The newest middle pages up to the budget.
class RecencyPolicy final : public SelectionPolicy {
 public:
  explicit RecencyPolicy(double f) : fraction_(f) {}
  std::string name() const override { return "recency:" + std::to_string(fraction_); }
  double default_fraction() const override { return fraction_; }
  std::vector<int64_t> select(const SelectionInput& in) override {
    const PageGeometry& g = in.geometry;
    std::vector<int64_t> pages;
    const int64_t keep = middle_allowance(in, fraction_);
    for (int64_t p = g.first_tail_page() - keep; p < g.first_tail_page(); ++p) pages.push_back(p);
    return merge_sorted(g.fixed_pages(), pages);
  }

 private:
  double fraction_;
};

// Uniformly random middle pages up to the budget, redrawn every cycle (seeded).
class RandomPolicy final : public SelectionPolicy {
 public:
  RandomPolicy(double f, uint64_t seed) : fraction_(f), rng_(seed) {}
  std::string name() const override { return "random:" + std::to_string(fraction_); }
  double default_fraction() const override { return fraction_; }
  std::vector<int64_t> select(const SelectionInput& in) override {
    const PageGeometry& g = in.geometry;
    std::vector<int64_t> middle(static_cast<size_t>(g.n_middle_pages()));
    std::iota(middle.begin(), middle.end(), g.sink_pages);
    std::shuffle(middle.begin(), middle.end(), rng_);
    middle.resize(static_cast<size_t>(middle_allowance(in, fraction_)));
    return merge_sorted(g.fixed_pages(), middle);
  }
  std::string state() const override {
    std::ostringstream out;
    out << rng_;
    return out.str();
  }
  void set_state(const std::string& state) override {
    std::istringstream in(state);
    in >> rng_;
    if (!in) fail("the saved state of policy {} is damaged", name());
  }

 private:
  double fraction_;
  std::mt19937_64 rng_;
};

// The highest-scoring middle pages: all pages with score > threshold (lsa) or the top ones up
// to the budget (oracle, lsa with --budget), at most top_k when top_k > 0 (lsa top-k mode);
// ties broken by the newer page.
class ScoredPolicy final : public SelectionPolicy {
 public:
  ScoredPolicy(std::string name, double fraction, float threshold, int64_t top_k = 0)
      : name_(std::move(name)), fraction_(fraction), threshold_(threshold), top_k_(top_k) {}
  std::string name() const override { return name_; }
  double default_fraction() const override { return fraction_; }
  bool needs_scores() const override { return true; }
  std::vector<int64_t> select(const SelectionInput& in) override {
    const PageGeometry& g = in.geometry;
    if (static_cast<int64_t>(in.page_scores.size()) != g.n_pages)
      fail("policy {}: expected {} page scores, got {}", name_, g.n_pages, in.page_scores.size());
    std::vector<int64_t> middle;
    for (int64_t p = g.sink_pages; p < g.first_tail_page(); ++p)
      if (in.page_scores[static_cast<size_t>(p)] > threshold_) middle.push_back(p);
    std::stable_sort(middle.begin(), middle.end(), [&](int64_t a, int64_t b) {
      const float sa = in.page_scores[static_cast<size_t>(a)], sb = in.page_scores[static_cast<size_t>(b)];
      return sa > sb || (sa == sb && a > b);
    });
    int64_t cap = in.budget_pages >= 0 || fraction_ < 1.0 ? middle_allowance(in, fraction_)
                                                          : g.n_middle_pages();
    if (top_k_ > 0) cap = std::min(cap, top_k_);
    if (static_cast<int64_t>(middle.size()) > cap) middle.resize(static_cast<size_t>(cap));
    return merge_sorted(g.fixed_pages(), middle);
  }

 private:
  std::string name_;
  double fraction_;
  float threshold_;
  int64_t top_k_;
};

// Quest: the per-step choice is the runtime's (pages_per_step); for the pool it keeps the pages
// read most often in the last cycle (page_scores = read counts), up to K middle pages or the
// --budget cap, so that the next cycle's frequent pages are resident instead of read from the
// store at every step.
class QuestReadsPolicy final : public SelectionPolicy {
 public:
  explicit QuestReadsPolicy(int64_t k) : k_(k) {}
  std::string name() const override { return "quest:" + std::to_string(k_); }
  bool needs_scores() const override { return true; }
  int64_t pages_per_step() const override { return k_; }
  std::vector<int64_t> select(const SelectionInput& in) override {
    const PageGeometry& g = in.geometry;
    if (static_cast<int64_t>(in.page_scores.size()) != g.n_pages)
      fail("policy {}: expected {} page scores, got {}", name(), g.n_pages, in.page_scores.size());
    std::vector<int64_t> middle;
    for (int64_t p = g.sink_pages; p < g.first_tail_page(); ++p)
      if (in.page_scores[static_cast<size_t>(p)] > 0) middle.push_back(p);
    std::stable_sort(middle.begin(), middle.end(), [&](int64_t a, int64_t b) {
      const float sa = in.page_scores[static_cast<size_t>(a)], sb = in.page_scores[static_cast<size_t>(b)];
      return sa > sb || (sa == sb && a > b);
    });
    const auto fixed = static_cast<int64_t>(g.fixed_pages().size());
    const int64_t cap = in.budget_pages >= 0 ? std::max<int64_t>(0, in.budget_pages - fixed) : k_;
    if (static_cast<int64_t>(middle.size()) > cap) middle.resize(static_cast<size_t>(cap));
    return merge_sorted(g.fixed_pages(), middle);
  }

 private:
  int64_t k_;
};

}  // namespace

std::unique_ptr<SelectionPolicy> make_policy(const PolicySpec& spec) {
  check_policy_spec(spec);
  switch (spec.kind) {
    case PolicyKind::kFull: return std::make_unique<FullPolicy>();
    case PolicyKind::kWindow: return std::make_unique<WindowPolicy>();
    case PolicyKind::kRecency: return std::make_unique<RecencyPolicy>(spec.fraction);
    case PolicyKind::kRandom: return std::make_unique<RandomPolicy>(spec.fraction, spec.seed);
    case PolicyKind::kQuest: return std::make_unique<QuestReadsPolicy>(spec.pages_per_step);
    case PolicyKind::kOracle: return make_top_scored_policy(to_string(spec), spec.fraction);
    case PolicyKind::kLsa:
      // The indexer's threshold (page score = max chunk sigmoid score > kSelectThreshold, or the
      // count of chunks above it, then > 0); no cap unless --budget is given. Top-k mode: the K
      // best pages whatever their score.
      if (spec.lsa_topk > 0)
        return std::make_unique<ScoredPolicy>("lsa-top" + std::to_string(spec.lsa_topk), 1.0,
                                              -INFINITY, spec.lsa_topk);
      return std::make_unique<ScoredPolicy>("lsa", 1.0, kSelectThreshold);
  }
  fail("policy kind {} has no chooser", static_cast<int>(spec.kind));
}

std::unique_ptr<SelectionPolicy> make_top_scored_policy(std::string name, double fraction) {
  return std::make_unique<ScoredPolicy>(std::move(name), fraction, -INFINITY);
}

std::unique_ptr<SelectionPolicy> make_policy(const std::string& spec, const PolicyParams& params) {
  PolicySpec parsed = parse_policy_spec(spec);
  parsed.seed = params.seed;
  parsed.lsa_topk = params.lsa_topk;
  return make_policy(parsed);
}

}  // namespace flashmem
