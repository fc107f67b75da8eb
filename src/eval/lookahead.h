// Lookahead recall, measured directly (issue 20, item 4): at each decode step t, how many of the
// pages full attention actually uses in steps t .. t+h-1 a policy has resident at step t. This
// is what "the indexer predicts the next tau steps" claims; eval-indexer measures it on dumps
// for chunks, this measures it in the runtime, for the pages each policy really holds.
//
// One sample: a prompt and a teacher-forced continuation (the CLI: a niah_multikey haystack, then
// its questions and their answers, several needles asked one after another), decoded one token
// per step with full attention, recording every step's attention mass per page (OracleTrace with
// tau = 1); then each policy decodes the same tokens and its resident middle pages are recorded
// per step:
//   lsa, recency:F, random:F, oracle:F: the selection in effect during step t (made at the last
//     cycle boundary, every tau steps);
//   quest:K: the pages its layers read in step t (union), i.e. step t's choice if it were kept
//     for the next h steps (quest re-chooses every step, so this is its lookahead if it stopped).
// "Used" pages of a step: the middle pages holding at least min_share of the step's attention
// mass (head-averaged, summed over layers, over all pages). Sink, tail and open pages are
// resident for every policy and are left out of both sets.
#pragma once
#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "engine/session.h"
#include "runtime/paged_kv_options.h"
#include "select/policy_spec.h"

namespace flashmem::eval {

struct LookaheadOptions {
  std::vector<int64_t> horizons = {1, 8, 64};  // h: steps of future use counted
  // Why 0.05: a page a step really reads from (a needle's value while it is copied holds most of
  // the retrieval layer's mass), not one of the many each holding a sliver of a diffuse step
  // (with "the pages holding 90% of the mass" a step of a 1K prompt used ~50 pages, so even
  // oracle:0.1 recalled 0.09 of them).
  double min_share = 0.05;
};

// Hits and needs summed over (sample, step) per horizon; recall = hits / needed.
struct LookaheadCounts {
  std::vector<int64_t> hits, needed;  // [horizons]
  double recall(size_t h) const {
    return needed[h] > 0 ? static_cast<double>(hits[h]) / static_cast<double>(needed[h]) : 0.0;
  }
};

// The pages of [first, end) holding at least min_share of the total of `mass` ([n_pages], all
// pages; missing entries are 0), ascending; empty when the total is 0.
std::vector<int64_t> used_pages(std::span<const float> mass, int64_t first, int64_t end, double min_share);

// Adds to `counts` (sized to `horizons`): for every step t with t + h <= steps, the union U of
// used[t .. t+h-1], needed += |U|, hits += |U ∩ resident[t]|. used/resident: [steps] ascending
// page lists.
void add_lookahead_counts(const std::vector<std::vector<int64_t>>& used,
                          const std::vector<std::vector<int64_t>>& resident,
                          const std::vector<int64_t>& horizons, LookaheadCounts& counts);

// One prompt and its continuation (one decode step per token) through full attention and every
// policy of `policies` (base's geometry, tau, budget and indexer; base.policy is ignored); adds
// to counts[i] for policies[i]. Throws Error as Session and PagedKv do (bad options, more tokens
// than the context).
void measure_lookahead(std::shared_ptr<const Model> model, const SessionOptions& session,
                       const PagedKvOptions& base, const std::vector<PolicySpec>& policies,
                       std::span<const int32_t> prompt, std::span<const int32_t> continuation,
                       const LookaheadOptions& options, std::vector<LookaheadCounts>& counts);

}  // namespace flashmem::eval
