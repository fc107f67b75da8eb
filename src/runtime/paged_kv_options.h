// PagedKv's options (runtime/paged_kv.h), in their own header so that the policy objects
// (runtime/policies/) can read them without the runtime's class.
#pragma once
#include <cstdint>
#include <memory>
#include <string>

#include "indexer/indexer_model.h"
#include "runtime/oracle_trace.h"
#include "kv/paged_defaults.h"
#include "select/policy_spec.h"
#include "util/thread_pool.h"

namespace flashmem {

struct PagedKvOptions {
  PolicySpec policy;            // see select/policy_spec.h (parse_policy_spec)
  double budget = -1;           // resident fraction cap (sink and tail count); < 0: policy's own
  // Resident cap in tokens (sink and tail count), rounded up to whole pages: a fixed size that
  // does not grow with the context; 0: none. Not together with budget > 0. Like the fraction, it
  // never goes below sink + tail + the open page.
  int64_t budget_tokens = 0;
  // page_tokens, sink_pages, recent_pages and tau beyond the context are cut to it
  // (fit_to_context in runtime/limits.h): same behaviour, memory bounded by the context.
  int64_t page_tokens = kDefaultPageTokens;
  int64_t sink_pages = kDefaultSinkPages;
  int64_t recent_pages = kDefaultRecentPages;  // raised to cover tau decode steps (tail_pages())
  int64_t tau = kDefaultTau;    // decode steps per selection cycle (the indexer's lookahead)
  std::string store = "ram";    // a --kv-store value (kv/store_spec.h): ram, disk:PATH, redis://...
  // Prompt with a store other than ram: K and V bytes of one layer per attention window.
  size_t prompt_window_bytes = kDefaultPromptWindowBytes;
  std::shared_ptr<const IndexerModel> indexer;  // required by `lsa`
  // Policy full: the sequence's attention masses are recorded into it (cleared on reset).
  // Policy oracle:F: required, read at every cycle boundary (not modified).
  std::shared_ptr<OracleTrace> oracle_trace;
  // The forward pass's pool, used by the indexer (lsa's chunk keys and page scoring) between
  // forward passes, from the calling thread only; nullptr: everything on the calling thread.
  // Results are bit-identical either way. Not owned; must outlive the PagedKv.
  ThreadPool* pool = nullptr;
};

// `o` as full attention over the same tiers and page geometry: policy full, every page resident.
// The caps and the policy's own options (lsa's lookahead among them) belong to `o`'s policy and
// are dropped with it. The one place that knows which fields those are: the server's
// per-request full attention, the oracle's recording pass and bench's recorder all use it.
inline PagedKvOptions full_attention_options(PagedKvOptions o) {
  o.policy = PolicySpec{.kind = PolicyKind::kFull};
  o.budget = -1;
  o.budget_tokens = 0;
  return o;
}

}  // namespace flashmem
