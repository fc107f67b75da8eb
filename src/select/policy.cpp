#include "select/policy.h"

#include <algorithm>
#include <charconv>
#include <cmath>
#include <numeric>

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

int64_t budget_pages_for(const PageGeometry& g, double fraction) {
  const auto pages = static_cast<int64_t>(std::floor(fraction * static_cast<double>(g.n_pages)));
  return std::max<int64_t>(pages, static_cast<int64_t>(g.fixed_pages().size()));
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
class QuestPolicy final : public SelectionPolicy {
 public:
  explicit QuestPolicy(int64_t k) : k_(k) {}
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

double parse_fraction(const std::string& spec, const std::string& arg) {
  double f = 0;
  const auto [ptr, ec] = std::from_chars(arg.data(), arg.data() + arg.size(), f);
  if (ec != std::errc() || ptr != arg.data() + arg.size() || !(f > 0.0 && f <= 1.0))
    fail("policy '{}': the fraction must be a number in (0, 1]", spec);
  return f;
}

int64_t parse_count(const std::string& spec, const std::string& arg) {
  int64_t k = 0;
  const auto [ptr, ec] = std::from_chars(arg.data(), arg.data() + arg.size(), k);
  // 2^31 pages of >= 1 token is beyond any context a KV budget can describe.
  if (ec != std::errc() || ptr != arg.data() + arg.size() || k < 1 || k > (int64_t{1} << 31))
    fail("policy '{}': the page count must be an integer in [1, 2^31]", spec);
  return k;
}

}  // namespace

std::string policy_kind(const std::string& spec) { return spec.substr(0, spec.find(':')); }

std::unique_ptr<SelectionPolicy> make_policy(const std::string& spec, const PolicyParams& params) {
  const uint64_t seed = params.seed;
  if (params.lsa_topk < 0) fail("--lsa-topk must be >= 1, got {}", params.lsa_topk);
  if (params.lsa_topk > 0 && policy_kind(spec) != "lsa")
    fail("--lsa-topk applies to policy lsa only, not '{}'", spec);
  const size_t colon = spec.find(':');
  const std::string name = spec.substr(0, colon);
  const std::string arg = colon == std::string::npos ? "" : spec.substr(colon + 1);
  auto need_arg = [&] {
    if (arg.empty())
      fail("policy '{}' needs an argument, e.g. {}:{}", spec, name, name == "quest" ? "8" : "0.1");
  };
  auto no_arg = [&] {
    if (colon != std::string::npos) fail("policy '{}' takes no argument", name);
  };
  if (name == "full") return no_arg(), std::make_unique<FullPolicy>();
  if (name == "window") return no_arg(), std::make_unique<WindowPolicy>();
  if (name == "recency") return need_arg(), std::make_unique<RecencyPolicy>(parse_fraction(spec, arg));
  if (name == "random")
    return need_arg(), std::make_unique<RandomPolicy>(parse_fraction(spec, arg), seed);
  if (name == "quest") return need_arg(), std::make_unique<QuestPolicy>(parse_count(spec, arg));
  if (name == "oracle")
    return need_arg(), std::make_unique<ScoredPolicy>(spec, parse_fraction(spec, arg), -INFINITY);
  // lsa: the indexer's threshold (page score = max chunk sigmoid score > 0.5, or the count of
  // chunks above it, then > 0); no cap unless --budget is given. Top-k mode: the K best pages
  // whatever their score.
  if (name == "lsa") {
    no_arg();
    if (params.lsa_topk > 0)
      return std::make_unique<ScoredPolicy>("lsa-top" + std::to_string(params.lsa_topk),
                                            1.0, -INFINITY, params.lsa_topk);
    return std::make_unique<ScoredPolicy>("lsa", 1.0, 0.5f);
  }
  fail("unknown policy '{}' (expected full, window, recency:F, random:F, quest:K, oracle:F, lsa)",
       spec);
}

}  // namespace flashmem
