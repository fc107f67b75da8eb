// A selection policy as typed data: parsed once from its --policy spelling at the edge (CLI,
// eval grid, tests), then passed around as a PolicySpec; nothing downstream reads the string.
#pragma once
#include <cstdint>
#include <string>

namespace flashmem {

enum class PolicyKind : uint8_t { kFull, kWindow, kRecency, kRandom, kQuest, kOracle, kLsa };

// lsa's page score: its best chunk's score, or the count of its chunks above the threshold.
enum class LsaPageScore : uint8_t { kMax, kCount };

// lsa's safety net (runtime/policies/lsa_policy.h): off, or on = when the indexer is unsure in a
// cycle (no page passes the threshold, or the page scores are flat) keep the best-scored pages up
// to the budget for that cycle instead of the few that pass.
enum class LsaFallback : uint8_t { kOff, kOn };

struct PolicySpec {
  PolicyKind kind = PolicyKind::kFull;
  double fraction = 0;          // recency:F, random:F, oracle:F: kept fraction in (0, 1]
  int64_t pages_per_step = 0;   // quest:K: middle pages each layer reads per decode step
  uint64_t seed = 0;            // random:F (--policy-seed)
  int64_t lsa_topk = 0;         // lsa: > 0 keeps the K best pages, ignoring the threshold
  LsaPageScore lsa_page_score = LsaPageScore::kMax;
  LsaFallback lsa_fallback = LsaFallback::kOff;
  // lsa: > 0 computes each cycle's selection this many decode steps before its boundary and
  // recalls its pages in the background meanwhile (runtime/paged_kv.h "Lookahead recall");
  // 0 = at the boundary. Must be < tau (checked by PagedKv, which knows tau).
  int64_t lsa_prefetch = 0;
};

// "full", "window", "recency:F", "random:F", "quest:K", "oracle:F" or "lsa" (F in (0, 1], K an
// integer in [1, 2^31]); the other fields keep their defaults. Throws Error naming the spec on an
// unknown name or a bad or missing argument.
PolicySpec parse_policy_spec(const std::string& spec);
// The spec as --policy spells it ("quest:8", "oracle:0.1"); fractions in shortest round-trip form.
std::string to_string(const PolicySpec& spec);

// "max" | "count"; throws Error ("--lsa-page-score must be max or count, not 'x'") otherwise.
LsaPageScore parse_lsa_page_score(const std::string& name);

// "off" | "on"; throws Error ("--lsa-fallback must be off or on, not 'x'") otherwise.
LsaFallback parse_lsa_fallback(const std::string& name);

// Throws Error on lsa options given to another policy, a negative lsa_topk or lsa_prefetch, or the fallback with
// top-k (which ignores the threshold, so there is nothing to fall back from).
void check_policy_spec(const PolicySpec& spec);

}  // namespace flashmem
