#include "eval/lookahead.h"

#include <algorithm>

#include "engine/oracle.h"
#include "runtime/paged_kv.h"
#include "util/error.h"

namespace flashmem::eval {

std::vector<int64_t> used_pages(std::span<const float> mass, int64_t first, int64_t end, double min_share) {
  double total = 0;
  for (const float m : mass) total += m;
  std::vector<int64_t> pages;
  if (!(total > 0)) return pages;
  for (int64_t p = first; p < std::min<int64_t>(end, static_cast<int64_t>(mass.size())); ++p)
    if (mass[static_cast<size_t>(p)] >= min_share * total) pages.push_back(p);
  return pages;
}

void add_lookahead_counts(const std::vector<std::vector<int64_t>>& used,
                          const std::vector<std::vector<int64_t>>& resident,
                          const std::vector<int64_t>& horizons, LookaheadCounts& counts) {
  if (used.size() != resident.size())
    fail("lookahead: {} steps of used pages but {} of resident pages", used.size(), resident.size());
  counts.hits.resize(horizons.size(), 0);
  counts.needed.resize(horizons.size(), 0);
  const auto steps = static_cast<int64_t>(used.size());
  std::vector<int64_t> future, kept;
  for (size_t h = 0; h < horizons.size(); ++h) {
    if (horizons[h] < 1) fail("lookahead horizon {} must be >= 1", horizons[h]);
    for (int64_t t = 0; t + horizons[h] <= steps; ++t) {
      future.clear();
      for (int64_t u = t; u < t + horizons[h]; ++u)
        future.insert(future.end(), used[static_cast<size_t>(u)].begin(), used[static_cast<size_t>(u)].end());
      std::sort(future.begin(), future.end());
      future.erase(std::unique(future.begin(), future.end()), future.end());
      const std::vector<int64_t>& r = resident[static_cast<size_t>(t)];
      kept.clear();
      std::set_intersection(future.begin(), future.end(), r.begin(), r.end(), std::back_inserter(kept));
      counts.needed[h] += static_cast<int64_t>(future.size());
      counts.hits[h] += static_cast<int64_t>(kept.size());
    }
  }
}

namespace {

// Middle pages [first, end) of a policy session at decode step t (positions before prompt + t
// committed): sink pages first, then up to the effective recency tail.
std::pair<int64_t, int64_t> middle_range(const PagedKvOptions& o, int64_t committed) {
  const PageGeometry g{committed / o.page_tokens + 1, o.sink_pages,
                       tail_pages_for(o.recent_pages, o.tau, o.page_tokens)};
  return {g.sink_pages, g.first_tail_page()};
}

std::vector<int64_t> within(const std::vector<int64_t>& pages, std::pair<int64_t, int64_t> range) {
  std::vector<int64_t> out;
  for (const int64_t p : pages)
    if (p >= range.first && p < range.second) out.push_back(p);
  std::sort(out.begin(), out.end());
  out.erase(std::unique(out.begin(), out.end()), out.end());
  return out;
}

}  // namespace

void measure_lookahead(std::shared_ptr<const Model> model, const SessionOptions& session,
                       const PagedKvOptions& base, const std::vector<PolicySpec>& policies,
                       std::span<const int32_t> prompt, std::span<const int32_t> continuation,
                       const LookaheadOptions& options, std::vector<LookaheadCounts>& counts) {
  if (prompt.empty() || continuation.empty()) fail("lookahead: empty prompt or continuation");
  if (!(options.min_share > 0 && options.min_share <= 1))
    fail("lookahead: min_share {} must be in (0, 1]", options.min_share);
  counts.resize(policies.size());
  const auto P = static_cast<int64_t>(prompt.size());

  // Full attention recording each step's page masses (tau = 1: one cycle per step).
  PagedKvOptions full = base;
  full.budget = -1;
  full.tau = 1;
  const auto trace = record_oracle_trace(model, session, full, prompt, continuation);
  const auto& masses = trace->cycle_page_mass;
  const auto steps = static_cast<int64_t>(continuation.size());

  for (size_t i = 0; i < policies.size(); ++i) {
    PagedKvOptions o = base;
    o.policy = policies[i];
    o.oracle_trace = nullptr;
    std::shared_ptr<OracleTrace> oracle_trace;
    if (o.policy.kind == PolicyKind::kOracle) {
      // oracle:F reads the masses of its own tau-step cycles: recorded over the same tokens.
      PagedKvOptions rec = base;
      rec.budget = -1;  // the recording pass keeps everything resident
      oracle_trace = record_oracle_trace(model, session, rec, prompt, continuation);
    }
    auto s = make_paged_session(model, session, o, oracle_trace);
    s->forward(prompt, nullptr, false);
    const PagedKv& kv = *s->paged();
    std::vector<std::vector<int64_t>> used, resident;
    for (int64_t t = 0; t < steps; ++t) {
      const auto range = middle_range(o, P + t);
      std::vector<int64_t> held = kv.selection();  // in effect during step t
      s->forward(std::span(&continuation[static_cast<size_t>(t)], 1), nullptr, false);
      if (kv.quest() != nullptr) {
        held.clear();
        for (const auto& layer : kv.last_quest_pages()) held.insert(held.end(), layer.begin(), layer.end());
      }
      resident.push_back(within(held, range));
      const std::span<const float> mass = static_cast<size_t>(t) < masses.size()
                                              ? std::span<const float>(masses[static_cast<size_t>(t)])
                                              : std::span<const float>();
      used.push_back(used_pages(mass, range.first, range.second, options.min_share));
    }
    add_lookahead_counts(used, resident, options.horizons, counts[i]);
  }
}

}  // namespace flashmem::eval
