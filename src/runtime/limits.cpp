#include "runtime/limits.h"

#include <unistd.h>

#include <algorithm>
#include <limits>
#include <thread>

#include "select/policy.h"
#include "util/error.h"

namespace flashmem {
namespace {

int64_t div_up(int64_t a, int64_t b) { return (a + b - 1) / b; }

// Physical memory of the machine in bytes (0 if unknown: then no memory check is made).
double physical_memory_bytes() {
  const long pages = ::sysconf(_SC_PHYS_PAGES);
  const long page_size = ::sysconf(_SC_PAGESIZE);
  return pages > 0 && page_size > 0 ? static_cast<double>(pages) * static_cast<double>(page_size) : 0.0;
}

std::string gigabytes(double bytes) { return fmt::format("{:.1f} GB", bytes / 1e9); }

}  // namespace

int max_threads() {
  const unsigned hw = std::thread::hardware_concurrency();  // 0 when unknown
  return std::max(1, 4 * static_cast<int>(std::min(hw, 1u << 20)));  // 2^20: no int overflow
}

int check_threads(int64_t n) {
  const int most = max_threads();
  if (n < 1 || n > most)
    fail("--threads must be in [1, {}] (4 x the {} hardware threads; leave it out to use all cores), got {}",
         most, std::max(1u, std::thread::hardware_concurrency()), n);
  return static_cast<int>(n);
}

double kv_bytes(const ModelConfig& c, int64_t n_ctx, DType kv_type) {
  return static_cast<double>(c.kv_rows() * c.n_layers) * static_cast<double>(n_ctx) *
         static_cast<double>(row_bytes(kv_type, c.kv_dim()));
}

ContextPlan plan_context(const ModelConfig& c, const ContextRequest& r) {
  if (r.prompt_tokens < 0 || r.max_new_tokens < 0)
    fail("prompt and generated token counts must be >= 0, got {} and {}", r.prompt_tokens, r.max_new_tokens);
  // Saturating: a request may carry any int64 (a server's JSON, a 64-bit flag).
  const int64_t need = r.max_new_tokens > std::numeric_limits<int64_t>::max() - r.prompt_tokens
                           ? std::numeric_limits<int64_t>::max()
                           : r.prompt_tokens + r.max_new_tokens;
  ContextPlan plan;
  if (r.n_ctx) {
    if (*r.n_ctx < 1) fail("the context (-c) must be >= 1 token, got {}", *r.n_ctx);
    if (need > *r.n_ctx)
      fail("the prompt ({} tokens) + {} tokens to generate = {} tokens do not fit the context of {} "
           "tokens (-c)",
           r.prompt_tokens, r.max_new_tokens, need, *r.n_ctx);
    plan.n_ctx = *r.n_ctx;
    if (plan.n_ctx > c.context_length)
      plan.warning = fmt::format(
          "context of {} tokens exceeds the model's trained context of {} tokens: flashmem applies "
          "RoPE unscaled (no linear, NTK or YaRN scaling), so quality beyond {} tokens is not guaranteed",
          plan.n_ctx, c.context_length, c.context_length);
  } else {
    if (need > c.context_length)
      fail("the prompt ({} tokens) + {} tokens to generate = {} tokens exceed the model's trained context "
           "of {} tokens; shorten them or, where the command has -c/--ctx-size, raise the context "
           "explicitly (quality beyond the trained context is not guaranteed)",
           r.prompt_tokens, r.max_new_tokens, need, c.context_length);
    plan.n_ctx = std::max<int64_t>(need, 1);
  }
  const double bytes = kv_bytes(c, plan.n_ctx, r.kv_type);
  const double memory = physical_memory_bytes();
  if (r.kv_in_ram && memory > 0 && bytes > memory)
    fail("a KV cache of {} tokens needs {} ({}), more than this machine's {} of memory", plan.n_ctx,
         gigabytes(bytes), dtype_info(r.kv_type).name, gigabytes(memory));
  return plan;
}

PagedKvOptions fit_to_context(PagedKvOptions o, int64_t n_ctx) {
  if (n_ctx < 1 || o.page_tokens < 1) return o;  // PagedKv refuses these with their own message
  const int64_t chunk =
      o.policy.kind == PolicyKind::kLsa && o.indexer
          ? std::max<int64_t>(1, o.indexer->config().chunk_tokens)
          : 1;
  o.page_tokens = std::min(o.page_tokens, div_up(n_ctx, chunk) * chunk);
  const int64_t pages = div_up(n_ctx, o.page_tokens);
  o.tau = std::min(o.tau, n_ctx);
  o.sink_pages = std::min(o.sink_pages, pages);
  o.recent_pages = std::min(o.recent_pages, pages);
  return o;
}

void check_page_geometry(const PagedKvOptions& o) {
  if (o.policy.kind != PolicyKind::kLsa || !o.indexer) return;
  const int64_t chunk = o.indexer->config().chunk_tokens;
  if (chunk > 0 && o.page_tokens % chunk != 0)
    fail("--page-tokens {} is not a multiple of the indexer's {}-token chunks (lsa scores a page by "
         "its chunks)",
         o.page_tokens, chunk);
}

}  // namespace flashmem
