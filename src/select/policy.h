// Selection policies: which KV pages stay resident (readable by attention) for the next cycle.
// One interface for all of them (DESIGN.md "Selection policies"); the runtime asks at every
// cycle boundary (every tau decode steps and right after prefill). Sink and recency-tail pages
// are always resident and are added by the runtime, so policies choose among the middle pages.
#pragma once
#include <cstdint>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include "kv/paged_defaults.h"
#include "select/policy_spec.h"

namespace flashmem {

struct PageGeometry {
  int64_t n_pages = 0;       // pages holding history, including the open (partial) page
  int64_t sink_pages = kDefaultSinkPages;      // first pages, always resident
  int64_t recent_pages = kDefaultRecentPages;  // last complete pages before the open page, always resident

  // Pages the policy may choose from: [sink_pages, first_tail_page()).
  int64_t first_tail_page() const;
  int64_t n_middle_pages() const;
  // The always-resident pages, ascending.
  std::vector<int64_t> fixed_pages() const;
};

// The runtime's effective recency tail: recent_pages, or more to hold every page written since
// the last cycle (up to tau tokens, possibly straddling one more page boundary): a selection made
// before those pages existed cannot name them, and they are the newest context.
int64_t tail_pages_for(int64_t recent_pages, int64_t tau, int64_t page_tokens);

// What a policy may look at when choosing. Fields a policy does not need stay empty.
struct SelectionInput {
  PageGeometry geometry;
  // Maximum number of pages resident in total (sink + tail + chosen); < 0 = no cap.
  int64_t budget_pages = -1;
  // Per middle page score (lsa: indexer page scores; oracle: future attention mass; quest: how
  // many (step, layer) reads each page had in the last cycle), indexed by page id, size n_pages.
  // Empty when the policy computes no scores.
  std::vector<float> page_scores;
};

class SelectionPolicy {
 public:
  virtual ~SelectionPolicy() = default;
  virtual std::string name() const = 0;
  // Pages (ascending, unique, all < n_pages) to keep resident for the next cycle, including the
  // fixed pages. A policy never returns more than budget_pages pages when a cap is set.
  virtual std::vector<int64_t> select(const SelectionInput& input) = 0;
  // Fraction of the context the policy is configured to keep (1 for full); used to derive
  // budget_pages when neither --budget nor --budget-tokens is given.
  virtual double default_fraction() const { return 1.0; }
  // True when the policy needs page_scores (the runtime then computes them).
  virtual bool needs_scores() const { return false; }
  // Per-step selection (quest:K): K > 0 means every decode step reads, per layer, only the K
  // middle pages with the highest key bounds (select/quest.h); select() then only decides what
  // the resident pool keeps for the next cycle. 0 for cycle-level policies.
  virtual int64_t pages_per_step() const { return 0; }
  // The chooser's state between cycles as text ("" for stateless choosers; random:F: its
  // generator), for a persisted sequence: set_state(state()) on a chooser of the same spec
  // continues exactly. set_state throws Error on text this chooser did not write.
  virtual std::string state() const { return {}; }
  virtual void set_state(const std::string& state);
};

// The chooser of `spec` (check_policy_spec first: throws Error on lsa options given to another
// policy). Choosers only choose; what a policy observes and scores is runtime/policies/.
std::unique_ptr<SelectionPolicy> make_policy(const PolicySpec& spec);

// The top-scored middle pages up to the budget (--budget or --budget-tokens when set, else
// `fraction` of the context), whatever their score; ties broken by the newer page. The chooser of oracle:F, and of
// lsa's fallback cycles.
std::unique_ptr<SelectionPolicy> make_top_scored_policy(std::string name, double fraction);

// Convenience for tests and tools holding a --policy string: parse_policy_spec(spec) with the
// seed and lsa_topk of `params`.
struct PolicyParams {
  uint64_t seed = 0;     // random:F
  int64_t lsa_topk = 0;  // lsa: > 0 keeps the lsa_topk best pages, ignoring the threshold
};
std::unique_ptr<SelectionPolicy> make_policy(const std::string& spec, const PolicyParams& params);
inline std::unique_ptr<SelectionPolicy> make_policy(const std::string& spec, uint64_t seed = 0) {
  return make_policy(spec, PolicyParams{.seed = seed});
}

// Budget in pages for a fraction of the context (sink and tail count against it), at least the
// fixed pages.
int64_t budget_pages_for(const PageGeometry& geometry, double fraction);
// Budget in pages for a fixed cap of `cap_pages` pages (--budget-tokens): min(n_pages, cap_pages),
// at least the fixed pages.
int64_t budget_pages_capped(const PageGeometry& geometry, int64_t cap_pages);

}  // namespace flashmem
