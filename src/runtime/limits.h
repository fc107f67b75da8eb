// The one place that checks a request's numeric settings against the model and the machine,
// before anything is allocated: the context against the model's trained context and the
// machine's memory, the prompt and the generation against the context, the thread count against
// the hardware, and the paged runtime's page geometry against the context. The CLI commands call
// these; a server must call the same ones.
#pragma once
#include <cstdint>
#include <optional>
#include <string>

#include "model/config.h"
#include "runtime/paged_kv.h"
#include "tensor/dtype.h"

namespace flashmem {

// Most threads a request may ask for: 4 x the hardware threads (at least 1). Beyond that,
// oversubscription only adds context switches: every kernel already splits its work into one
// part per thread, so more threads than cores never run at once.
int max_threads();

// n when 1 <= n <= max_threads(); else throws Error "--threads must be in [1, M] (...), got n".
// (0 and negative values are refused, not read as "all cores": leave the flag out for that.)
int check_threads(int64_t n);

// One sequence as a request describes it.
struct ContextRequest {
  int64_t prompt_tokens = 0;       // tokens the sequence starts with (>= 0)
  int64_t max_new_tokens = 0;      // tokens it may generate after them (>= 0)
  std::optional<int64_t> n_ctx;    // an explicit context (-c); none: prompt + new tokens
  DType kv_type = DType::F16;
  bool kv_in_ram = true;           // false: a disk store holds the KV, only the pool is in RAM
};

struct ContextPlan {
  int64_t n_ctx = 0;     // the KV capacity to allocate
  std::string warning;   // non-empty: an explicit context beyond the trained one (print it)
};

// The context for `r` on model `c`. Throws Error, naming the numbers, when:
//   - an explicit n_ctx is < 1, or prompt + new tokens do not fit it;
//   - without an explicit n_ctx, prompt + new tokens exceed the model's trained context
//     (c.context_length): a 5 MB prompt is refused here instead of starting a days-long prefill;
//   - the KV of the context (kv_in_ram) needs more than this machine's physical memory.
// An explicit n_ctx above the trained context is allowed with a warning: flashmem applies RoPE
// unscaled (no linear, NTK or YaRN scaling), so quality beyond the trained context is not
// guaranteed.
ContextPlan plan_context(const ModelConfig& c, const ContextRequest& r);

// Bytes of the K and V of n_ctx positions of every layer in kv_type (what the contiguous cache
// or the RAM store holds for a full context).
double kv_bytes(const ModelConfig& c, int64_t n_ctx, DType kv_type);

// `o` with tau and the sink and recency pages cut to what a context of `n_ctx` positions can
// use, and page_tokens cut to the context (rounded up to the indexer's chunk when lsa uses one):
// larger values behave exactly as these (tau beyond the context never starts a second cycle;
// sink or tail pages beyond the context's pages are all its pages; one page beyond the context
// is the whole context) but would size the resident pool and its bookkeeping by the flag
// instead of by the context. PagedKv applies it to its options.
PagedKvOptions fit_to_context(PagedKvOptions o, int64_t n_ctx);

// Throws Error when lsa's pages are not a whole number of the indexer's chunks (a chunk would
// straddle two pages, so a page's score would mix in its neighbour's tokens).
void check_page_geometry(const PagedKvOptions& o);

}  // namespace flashmem
