// Small helpers shared by the CLI commands.
#pragma once
#include <algorithm>
#include <cerrno>
#include <charconv>
#include <cstdio>
#include <cstring>
#include <memory>
#include <string>
#include <vector>

#include <CLI/CLI.hpp>

#include "flashmem/engine.h"
#include "flashmem/sequence.h"
#include "indexer/indexer_model.h"
#include "engine/session.h"
#include "engine/oracle.h"
#include "model/sampler.h"
#include "runtime/limits.h"
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

// -t/--threads: left out, `threads` keeps 0 (= all hardware threads); given, it must pass
// check_threads (runtime/limits.h): 0, negative and absurd counts are refused while parsing.
inline CLI::Option* add_threads_option(CLI::App* cmd, int& threads) {
  return cmd->add_option_function<int64_t>(
      "-t,--threads", [&threads](int64_t n) { threads = check_threads(n); },
      "threads (default: all cores; at most 4 x the hardware threads)");
}

// --weights-memory map|huge: how the model's weights reach memory (model/model.h's
// WeightMemory); any other value is refused while parsing.
inline CLI::Option* add_weights_memory_option(CLI::App* cmd, WeightMemory& memory) {
  return cmd
      ->add_option_function<std::string>(
          "--weights-memory", [&memory](const std::string& text) { memory = parse_weight_memory(text); },
          "weights in memory: map (mmap the file: page cache shared with other processes, read lazily) | "
          "huge (read once into private memory on 2 MiB pages where the kernel grants them; needs the "
          "file's size free)")
      ->default_str("map");
}

// --temp, --top-k, --top-p, --min-p, --seed (model/sampler.h), shared by run and chat.
inline void add_sampler_options(CLI::App* cmd, SamplerOptions& s) {
  cmd->add_option("--temp", s.temperature, "temperature (0 = greedy)")->capture_default_str();
  cmd->add_option("--top-k", s.top_k, "top-k (0 = off)")->capture_default_str();
  cmd->add_option("--top-p", s.top_p, "top-p (1 = off)")->capture_default_str();
  cmd->add_option("--min-p", s.min_p, "min-p (0 = off)")->capture_default_str();
  cmd->add_option("--seed", s.seed, "sampling seed")->capture_default_str();
}

// Flushes what was printed to stdout so far; Error when it cannot be written (a full disk, a
// closed pipe): streamed output stops at the first failed write instead of running on unseen.
inline void flush_stdout() {
  if (std::fflush(stdout) != 0) fail("cannot write to standard output: {}", std::strerror(errno));
  if (std::ferror(stdout)) fail("cannot write to standard output");
}

// The end of a command: flushes and closes stdout; Error if any of its output was lost (the exit
// status must say so, as `tokenize > /dev/full` would otherwise end with 0).
inline void close_stdout() {
  flush_stdout();
  if (std::fclose(stdout) != 0) fail("cannot write to standard output: {}", std::strerror(errno));
}

// plan_context (runtime/limits.h) for a CLI command: prints its warning to stderr.
inline int64_t cli_context(const ModelConfig& c, ContextRequest request, const std::string& kv_store) {
  request.kv_in_ram = kv_store == "ram";
  const ContextPlan plan = plan_context(c, request);
  if (!plan.warning.empty()) std::fprintf(stderr, "warning: %s\n", plan.warning.c_str());
  return plan.n_ctx;
}

inline DType parse_kv_type(const std::string& s) {
  if (s == "f16") return DType::F16;
  if (s == "f32") return DType::F32;
  if (s == "q8_0") return DType::Q8_0;
  fail("--kv-type must be f16, f32 or q8_0, not '{}'", s);
}

// The LSA runtime's flags. Without --policy the session uses the plain contiguous cache (no
// selection machinery at all); any --policy, `full` included, runs the paged two-tier runtime.
struct LsaArgs {
  std::string policy, indexer, store = "ram", lsa_page_score = "max", lsa_fallback = "off";
  double budget = -1;
  int64_t budget_tokens = 0;  // 0: not given
  int64_t page_tokens = kDefaultPageTokens, sink_pages = kDefaultSinkPages,
          recent_pages = kDefaultRecentPages, tau = kDefaultTau, lsa_topk = 0, lsa_prefetch = 0;
  uint64_t seed = 0;
};

inline void add_lsa_options(CLI::App* cmd, LsaArgs& a) {
  cmd->add_option("--policy", a.policy,
                  "KV selection: full | window | recency:F | random:F | quest:K | oracle:F | lsa "
                  "(default: none, plain contiguous cache)");
  cmd->add_option("--budget", a.budget, "resident fraction of the context's pages (sink and tail count)");
  // Given, N must be >= 1 (0 would be no cap at all: leave the flag out for that).
  cmd->add_option_function<int64_t>(
      "--budget-tokens",
      [&a](int64_t n) {
        if (n < 1) fail("--budget-tokens must be >= 1 (leave it out for no token cap), got {}", n);
        a.budget_tokens = n;
      },
      "resident cap in tokens, the same at any context (sink and tail count; rounded up to whole "
      "pages, never below sink + tail + open page); not with --budget");
  cmd->add_option("--indexer", a.indexer, "Memory Indexer .gguf (policy lsa)");
  cmd->add_option("--kv-store", a.store,
                  "slow tier: ram | disk:PATH (a directory, or a file name that does not exist yet) | "
                  "redis://HOST:PORT[/PREFIX] | unix:///PATH.sock[?prefix=PREFIX]")
      ->capture_default_str();
  cmd->add_option("--page-tokens", a.page_tokens, "tokens per KV page")->capture_default_str();
  cmd->add_option("--sink-pages", a.sink_pages, "always-resident first pages")->capture_default_str();
  cmd->add_option("--recent-pages", a.recent_pages, "always-resident newest pages")->capture_default_str();
  cmd->add_option("--tau", a.tau, "decode steps per selection cycle")->capture_default_str();
  cmd->add_option("--policy-seed", a.seed, "seed of random:F")->capture_default_str();
  // Given, K must be >= 1 (0 is refused like -1: leaving the flag out is the threshold).
  cmd->add_option_function<int64_t>(
      "--lsa-topk",
      [&a](int64_t k) {
        if (k < 1) fail("--lsa-topk must be >= 1 (leave it out for the 0.5 threshold), got {}", k);
        a.lsa_topk = k;
      },
      "lsa: keep the K best pages, ignoring the 0.5 threshold");
  cmd->add_option("--lsa-page-score", a.lsa_page_score,
                  "lsa page score: max (best chunk score) | count (chunks above 0.5)")
      ->capture_default_str();
  cmd->add_option("--lsa-fallback", a.lsa_fallback,
                  "lsa safety net: off | on (when no page passes 0.5 or the scores are flat, keep the "
                  "best-scored pages up to the budget for that cycle)")
      ->capture_default_str();
  cmd->add_option("--lsa-prefetch", a.lsa_prefetch,
                  "lsa lookahead recall: choose each cycle's pages K decode steps before its boundary "
                  "and recall them meanwhile (K < tau; 0 = off, the default, as in docs/RESULTS.md's "
                  "accuracy evaluation; costs up to half the budget's selected pages in spare cells)")
      ->capture_default_str();
}

inline PagedKvOptions paged_options(const LsaArgs& a) {
  PagedKvOptions o;
  o.policy = parse_policy_spec(a.policy);
  o.policy.seed = a.seed;
  o.policy.lsa_topk = a.lsa_topk;
  o.policy.lsa_page_score = parse_lsa_page_score(a.lsa_page_score);
  o.policy.lsa_fallback = parse_lsa_fallback(a.lsa_fallback);
  o.policy.lsa_prefetch = a.lsa_prefetch;
  o.budget = a.budget;
  o.budget_tokens = a.budget_tokens;
  o.page_tokens = a.page_tokens;
  o.sink_pages = a.sink_pages;
  o.recent_pages = a.recent_pages;
  o.tau = a.tau;
  o.store = a.store;
  if (!a.indexer.empty())
    o.indexer = std::make_shared<const IndexerModel>(IndexerModel::load(a.indexer));
  return o;
}

// True when --policy is oracle:F (a two-pass run, runtime/oracle.h).
inline bool is_oracle(const LsaArgs& a) {
  return !a.policy.empty() && parse_policy_spec(a.policy).kind == PolicyKind::kOracle;
}

// Without --policy (the plain cache): throws Error when any other LSA flag was given.
inline void check_no_lsa_flags(const LsaArgs& a) {
  if (!a.indexer.empty() || a.budget >= 0 || a.budget_tokens != 0 || a.store != "ram" || a.lsa_topk != 0 ||
      a.lsa_page_score != "max" || a.lsa_fallback != "off" || a.lsa_prefetch != 0)
    fail("--indexer, --budget, --budget-tokens, --kv-store, --lsa-topk, --lsa-page-score, --lsa-fallback and "
         "--lsa-prefetch need a --policy");
}

// Checks what PagedKv cannot see (it takes budget < 0 as "the policy's own").
inline void check_lsa_args(const LsaArgs& a) {
  if (a.budget != -1 && !(a.budget > 0 && a.budget <= 1))
    fail("--budget must be a fraction in (0, 1], got {}", a.budget);
  if (a.budget != -1 && a.budget_tokens != 0)
    fail("--budget and --budget-tokens both cap the resident KV: give one of them");
}

// The engine's side of the LSA flags: the slow tier and the indexer shared by its sequences.
inline EngineOptions engine_options(const LsaArgs& a, int threads) {
  return {.n_threads = threads, .kv_store = a.store};
}

// A sequence's side of the LSA flags: no --policy is the plain contiguous cache.
inline SequenceOptions sequence_options(const LsaArgs& a, int64_t n_ctx, DType kv_type) {
  SequenceOptions o{.n_ctx = n_ctx, .kv_type = kv_type};
  if (a.policy.empty()) {
    check_no_lsa_flags(a);
    return o;
  }
  check_lsa_args(a);
  o.paged = paged_options(a);
  return o;
}

// `trace`: oracle:F's recorded masses (and the recording target of policy full).
inline std::unique_ptr<Session> make_session(const std::shared_ptr<Model>& model,
                                             const SessionOptions& options, const LsaArgs& a,
                                             std::shared_ptr<OracleTrace> trace = nullptr) {
  const SequenceOptions so = sequence_options(a, options.n_ctx, options.kv_type);
  if (!so.paged) return std::make_unique<Session>(model, options);
  return make_paged_session(model, options, *so.paged, std::move(trace));
}

}  // namespace flashmem::cli
