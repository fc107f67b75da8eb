// Small helpers shared by the CLI commands.
#pragma once
#include <algorithm>
#include <charconv>
#include <memory>
#include <string>
#include <vector>

#include <CLI/CLI.hpp>

#include "indexer/indexer_model.h"
#include "model/session.h"
#include "runtime/paged_kv.h"
#include "tensor/dtype.h"
#include "util/error.h"

namespace flashmem::cli {

// "10,12,20" -> ids; Error on anything but comma-separated integers.
inline std::vector<int32_t> parse_layer_list(const std::string& text) {
  std::vector<int32_t> ids;
  size_t start = 0;
  while (start <= text.size()) {
    const size_t comma = std::min(text.find(',', start), text.size());
    int32_t id = 0;
    const char* first = text.data() + start;
    const char* last = text.data() + comma;
    const auto [end, ec] = std::from_chars(first, last, id);
    if (first == last || ec != std::errc() || end != last)
      fail("--layers must be comma-separated integers, not '{}'", text);
    ids.push_back(id);
    start = comma + 1;
  }
  return ids;
}

inline DType parse_kv_type(const std::string& s) {
  if (s == "f16") return DType::F16;
  if (s == "f32") return DType::F32;
  fail("--kv-type must be f16 or f32, not '{}'", s);
}

// The LSA runtime's flags. Without --policy the session uses the plain contiguous cache (no
// selection machinery at all); any --policy, `full` included, runs the paged two-tier runtime.
struct LsaArgs {
  std::string policy, indexer, store = "ram";
  double budget = -1;
  int64_t page_tokens = 64, sink_pages = 1, recent_pages = 2, tau = 64;
  uint64_t seed = 0;
};

inline void add_lsa_options(CLI::App* cmd, LsaArgs& a) {
  cmd->add_option("--policy", a.policy,
                  "KV selection: full | window | recency:F | random:F | lsa (default: none, "
                  "plain contiguous cache)");
  cmd->add_option("--budget", a.budget, "resident fraction of the context's pages (sink and tail count)");
  cmd->add_option("--indexer", a.indexer, "Memory Indexer .gguf (policy lsa)");
  cmd->add_option("--kv-store", a.store, "slow tier: ram | disk:PATH")->capture_default_str();
  cmd->add_option("--page-tokens", a.page_tokens, "tokens per KV page")->capture_default_str();
  cmd->add_option("--sink-pages", a.sink_pages, "always-resident first pages")->capture_default_str();
  cmd->add_option("--recent-pages", a.recent_pages, "always-resident newest pages")->capture_default_str();
  cmd->add_option("--tau", a.tau, "decode steps per selection cycle")->capture_default_str();
  cmd->add_option("--policy-seed", a.seed, "seed of random:F")->capture_default_str();
}

inline std::unique_ptr<Session> make_session(const std::shared_ptr<Model>& model,
                                             const SessionOptions& options, const LsaArgs& a) {
  if (a.policy.empty()) {
    if (!a.indexer.empty() || a.budget >= 0 || a.store != "ram")
      fail("--indexer, --budget and --kv-store need a --policy");
    return std::make_unique<Session>(model, options);
  }
  PagedKvOptions o;
  o.policy = a.policy;
  o.budget = a.budget;
  o.page_tokens = a.page_tokens;
  o.sink_pages = a.sink_pages;
  o.recent_pages = a.recent_pages;
  o.tau = a.tau;
  o.store = a.store;
  o.seed = a.seed;
  if (!a.indexer.empty())
    o.indexer = std::make_shared<const IndexerModel>(IndexerModel::load(a.indexer));
  const int64_t capacity = options.n_ctx > 0 ? options.n_ctx : model->config().context_length;
  return std::make_unique<Session>(
      model, options, std::make_unique<PagedKv>(*model, capacity, options.kv_type, o));
}

// The runtime's accounting, or nullptr for a plain session.
inline const PagedKv* paged_kv(const Session& session) {
  return dynamic_cast<const PagedKv*>(&session.kv());
}

}  // namespace flashmem::cli
