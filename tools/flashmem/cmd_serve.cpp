// `flashmem serve`: an OpenAI-compatible HTTP server (src/server/) on one model.
#include <fmt/format.h>
#include <pthread.h>
#include <signal.h>

#include <cstdlib>
#include <filesystem>

#include "commands.h"
#include "kv/store_spec.h"
#include "common.h"
#include "server/chat_prompt.h"
#include "server/server.h"
#include "util/huge_pages.h"

namespace flashmem::cli {
namespace {

struct ServeArgs {
  WeightMemory weights = WeightMemory::kMap;  // --weights-memory
  std::string model, host = "127.0.0.1", api_key, state_dir, kv_type = "f16";
  int port = 8080, threads = 0;  // 8080: the port OpenAI-compatible local servers commonly use
  int64_t ctx = 0, kv_budget_mb = 0;
  // Four requests decode together by default: batching pays off from the second sequence on,
  // while each added one slows every step a little; four times as many may wait.
  int64_t max_sequences = 4, max_queue = 16;
  double shutdown_grace = 5;  // seconds: long enough for short answers to finish
  // Seconds a request may take from arrival to its last token: the official OpenAI clients give
  // up after 10 minutes by default, so work past that is for nobody; a long prefill on a CPU
  // (16K tokens of an 8B model) stays well inside it.
  double request_timeout = 600;
  // Conversation reuse, MiB of disk for kept prompt prefixes: 2 GiB holds the prefixes of a few
  // dozen 8K-token conversations of a small model (needle-lm: 8 MiB each in f16) or of about
  // eight of a 1B-class one (~32 KiB of KV per token), a small share of a typical free disk.
  int64_t reuse_quota_mb = 2048;
  bool has_reuse_quota = false;  // --reuse-quota-mb given
  LsaArgs lsa;
  bool has_store = false;  // --kv-store given
  std::string role = "both", prefill_url;  // server/role.h
};

// $XDG_STATE_HOME/flashmem, else ~/.local/state/flashmem (the XDG base directory default).
std::string default_state_dir() {
  if (const char* xdg = std::getenv("XDG_STATE_HOME"); xdg != nullptr && *xdg != '\0')
    return std::string(xdg) + "/flashmem";
  if (const char* home = std::getenv("HOME"); home != nullptr && *home != '\0')
    return std::string(home) + "/.local/state/flashmem";
  fail("neither XDG_STATE_HOME nor HOME is set: give --state-dir");
}

// The slow tier: --kv-store, or by default a disk store under the state dir (the ram store
// mirrors every sequence's whole history in RAM, which a budget of resident KV cannot bound).
// A disk store's path must be a directory (one file per sequence); it is created if missing.
std::string slow_tier(const ServeArgs& a) {
  if (!a.state_dir.empty() && (a.lsa.policy.empty() || a.has_store))
    fail("--state-dir holds the default slow tier of a --policy; without a policy, or with --kv-store, "
         "it would not be used");
  if (a.lsa.policy.empty() && !a.has_store) return "ram";  // contiguous caches use no slow tier
  const std::string store =
      a.has_store ? a.lsa.store : "disk:" + (a.state_dir.empty() ? default_state_dir() : a.state_dir) + "/kv";
  if (store.rfind("disk:", 0) == 0) {
    const std::filesystem::path dir = store.substr(5);
    std::error_code ec;
    std::filesystem::create_directories(dir, ec);
    if (!std::filesystem::is_directory(dir))
      fail("the KV store directory '{}' cannot be created{}", dir.string(), ec ? ": " + ec.message() : "");
  }
  return store;
}

std::string describe_policy(const ServeArgs& a) {
  if (a.lsa.policy.empty()) return "none (contiguous KV cache, whole context resident)";
  if (a.lsa.budget_tokens > 0)
    return fmt::format("{}, resident cap {} tokens per request", a.lsa.policy, a.lsa.budget_tokens);
  return a.lsa.budget > 0 ? fmt::format("{}, resident fraction {}", a.lsa.policy, a.lsa.budget)
                          : fmt::format("{} (its own resident fraction)", a.lsa.policy);
}

// lsa without --budget or --budget-tokens: the server's memory-honest default (server_options.h).
void default_serve_budget(LsaArgs& lsa) {
  if (lsa.policy.empty() || lsa.budget >= 0 || lsa.budget_tokens > 0) return;
  if (parse_policy_spec(lsa.policy).kind == PolicyKind::kLsa) lsa.budget = server::kServeLsaBudget;
}

// A Redis tier's ?ttl= shorter than a request may run would let a running request's untouched
// pages expire under it (a read refreshes a page; pages lsa does not select are not read).
void check_store_ttl(const ServeArgs& a) {
  const StoreSpec spec = parse_store_spec(a.lsa.store);
  if (spec.kind != StoreSpec::Kind::kRedis || spec.redis.ttl_seconds == 0) return;
  if (a.request_timeout == 0 || static_cast<double>(spec.redis.ttl_seconds) <= a.request_timeout)
    fail("--kv-store ttl={} s must exceed --request-timeout ({} s{}): a running request's pages that are "
         "not recalled for that long would expire",
         spec.redis.ttl_seconds, a.request_timeout, a.request_timeout == 0 ? ", no limit" : "");
}

void serve(ServeArgs a) {
  if (is_oracle(a.lsa)) fail("--policy oracle:F needs a recorded first pass of each request; serve does not offer it");
  if (a.kv_budget_mb < 0) fail("--kv-budget-mb must be >= 0, got {}", a.kv_budget_mb);
  a.lsa.store = slow_tier(a);
  default_serve_budget(a.lsa);
  auto model = Model::load(a.model, a.weights);
  const DType kv_type = parse_kv_type(a.kv_type);
  const int64_t ctx = a.ctx != 0 ? a.ctx : model->config().context_length;
  // The context's checks and warning (beyond the trained context; KV in RAM beyond the machine's).
  cli_context(model->config(), {.max_new_tokens = ctx, .n_ctx = ctx, .kv_type = kv_type}, a.lsa.store);

  server::ServerOptions o;
  o.host = a.host;
  o.port = a.port;
  o.api_key = a.api_key;
  o.model_id = std::filesystem::path(a.model).stem().string();
  o.ctx = ctx;
  o.scheduler.max_sequences = a.max_sequences;
  o.scheduler.max_queue = a.max_queue;
  o.scheduler.sequence = sequence_options(a.lsa, ctx, kv_type);
  o.scheduler.request_timeout_seconds = a.request_timeout;
  o.role = server::parse_server_role(a.role);
  o.prefill_url = a.prefill_url;
  check_store_ttl(a);
  // Reuse keeps prefixes of paged sequences in a disk tier: on by default where that holds. A
  // decode server prefills only prompts' last parts: the prefill servers keep the prefixes.
  const bool reusable = o.scheduler.sequence.paged && a.lsa.store.rfind("disk:", 0) == 0 &&
                        o.role != server::ServerRole::kDecode;
  if (a.reuse_quota_mb < 0) fail("--reuse-quota-mb must be >= 0, got {}", a.reuse_quota_mb);
  if (a.has_reuse_quota && a.reuse_quota_mb > 0 && !reusable)
    fail("--reuse-quota-mb keeps prompt prefixes in a disk slow tier: it needs a --policy and a disk: "
         "--kv-store (the default with a policy), on a server that prefills (--role both or prefill)");
  o.scheduler.reuse_quota_bytes = reusable ? static_cast<uint64_t>(a.reuse_quota_mb) << 20 : 0;
  EngineOptions engine_opts = engine_options(a.lsa, a.threads);
  // MiB: the unit of --kv-budget-mb.
  engine_opts.kv_budget_bytes = static_cast<uint64_t>(a.kv_budget_mb) << 20;
  auto engine = std::make_unique<Engine>(model, engine_opts);
  const std::string chat_format = server::ChatPrompts(*engine).format();

  // SIGINT and SIGTERM are taken by sigwait below (every thread started from here on blocks
  // them), so a stop lets requests finish instead of killing the process.
  sigset_t stop_signals;
  sigemptyset(&stop_signals);
  sigaddset(&stop_signals, SIGINT);
  sigaddset(&stop_signals, SIGTERM);
  pthread_sigmask(SIG_BLOCK, &stop_signals, nullptr);

  server::Server server(std::move(engine), o);
  fmt::print(stderr, "flashmem serve: model {} ({} layers, context {}), policy {}, KV {} in slow tier {}\n",
             o.model_id, model->config().n_layers, ctx, describe_policy(a), a.kv_type, a.lsa.store);
  fmt::print(stderr, "flashmem serve: weights {}\n",
             weight_memory_text(model->file().memory() == FileMemory::kHugePages,
                                static_cast<double>(model->weights_on_huge_pages()),
                                static_cast<double>(model->file().file_size()), thp_mode_name(transparent_huge_pages())));
  fmt::print(stderr, "flashmem serve: KV budget {}, at most {} requests running and {} waiting\n",
             a.kv_budget_mb > 0 ? fmt::format("{} MiB", a.kv_budget_mb) : "none", a.max_sequences, a.max_queue);
  fmt::print(stderr, "flashmem serve: chat prompts: {}\n", chat_format);
  fmt::print(stderr, "flashmem serve: conversation reuse: {}\n",
             o.scheduler.reuse_quota_bytes > 0 ? fmt::format("prompt prefixes kept in {}, up to {} MiB", a.lsa.store,
                                                             a.reuse_quota_mb)
                                               : "off");
  fmt::print(stderr, "flashmem serve: role {}{}\n", a.role,
             o.role == server::ServerRole::kDecode ? ", prompts prefilled by " + a.prefill_url
             : o.role == server::ServerRole::kPrefill ? ", sequences handed over in " + a.lsa.store
                                                      : "");
  fmt::print(stderr, "flashmem serve: listening on http://{}:{}{}\n", a.host, server.port(),
             a.api_key.empty() ? "" : " (API key required)");
  server.start();
  int sig = 0;
  sigwait(&stop_signals, &sig);
  fmt::print(stderr, "flashmem serve: signal {}: finishing requests (up to {} s)\n", sig, a.shutdown_grace);
  server.stop(a.shutdown_grace);
}

const CommandRegistration kServe("serve", [](CLI::App& app) {
  auto* cmd = app.add_subcommand("serve", "OpenAI-compatible HTTP server (completions, chat, streaming)");
  auto a = std::make_shared<ServeArgs>();
  cmd->add_option("-m,--model", a->model, "GGUF model")->required();
  cmd->add_option("--host", a->host, "address to listen on")->capture_default_str();
  cmd->add_option("--port", a->port, "port to listen on (0: any free port)")->capture_default_str();
  cmd->add_option("--api-key", a->api_key, "require 'Authorization: Bearer KEY' (except /health)")
      ->envname("FLASHMEM_API_KEY");
  cmd->add_option("-c,--ctx", a->ctx, "most tokens of a request's prompt + max_tokens (default: the model's context)");
  cmd->add_option("--kv-budget-mb", a->kv_budget_mb,
                  "resident KV cells all running requests may reserve, MiB (0 = no limit)")
      ->capture_default_str();
  cmd->add_option("--max-sequences", a->max_sequences, "requests decoded together at most")->capture_default_str();
  cmd->add_option("--max-queue", a->max_queue, "requests waiting for admission at most (beyond: HTTP 429)")
      ->capture_default_str();
  cmd->add_option("--state-dir", a->state_dir,
                  "server state; the default slow tier is disk:STATE_DIR/kv (default: $XDG_STATE_HOME/flashmem "
                  "or ~/.local/state/flashmem)");
  cmd->add_option("--kv-type", a->kv_type, "KV cache type: f16 | f32 | q8_0")->capture_default_str();
  cmd->add_option("--shutdown-grace", a->shutdown_grace, "seconds requests may finish after SIGINT/SIGTERM")
      ->capture_default_str();
  cmd->add_option("--request-timeout", a->request_timeout,
                  "seconds a request may take from arrival to its last token; past it: HTTP 504 (a stream: an "
                  "error event) and its sequence freed (0 = no limit; default: the OpenAI clients' own 10 min)")
      ->capture_default_str();
  cmd->add_option("--reuse-quota-mb", a->reuse_quota_mb,
                  "disk for kept prompt prefixes (conversation reuse), MiB; 0 = off. Needs a --policy "
                  "and a disk slow tier")
      ->capture_default_str();
  cmd->add_option("--role", a->role,
                  "both: prefill and decode here | prefill: prefill prompts for decode servers and hand "
                  "them over in the shared --kv-store | decode: send prompts to --prefill-url and decode")
      ->capture_default_str();
  cmd->add_option("--prefill-url", a->prefill_url, "--role decode: the prefill server, http://HOST:PORT");
  add_threads_option(cmd, a->threads);
  add_weights_memory_option(cmd, a->weights);
  add_lsa_options(cmd, a->lsa);
  cmd->get_option("--budget")->description(
      fmt::format("resident fraction of each request's pages (sink and tail count); default with --policy lsa: "
                  "{} (the paper's average footprint; lsa's own threshold-only selection would reserve the "
                  "whole context)",
                  server::kServeLsaBudget));
  cmd->get_option("--kv-store")
      ->description("slow tier: ram | disk:DIR (a directory, created if missing; default with a --policy: "
                    "disk:STATE_DIR/kv) | redis://HOST:PORT[/PREFIX][?ttl=SECONDS] | "
                    "unix:///PATH.sock[?prefix=PREFIX][&ttl=SECONDS]")
      ->default_str("");
  cmd->callback([a, cmd] {
    a->has_store = cmd->count("--kv-store") > 0;
    a->has_reuse_quota = cmd->count("--reuse-quota-mb") > 0;
    serve(*a);
  });
});

}  // namespace
}  // namespace flashmem::cli
