#include "server/routes.h"

#include <chrono>
#include <ctime>
#include <memory>

#include "server/auth.h"
#include "server/chat_prompt.h"
#include "server/handoff.h"
#include "server/peer_probe.h"
#include "server/sse.h"
#include "server/web_page.h"
#include "util/process_memory.h"
#include "util/timer.h"

namespace flashmem::server {

namespace {

using nlohmann::json;

// How often a waiting request looks at its client's connection: a client that leaves is noticed
// (and its sequence freed) within this time, at the cost of one poll() per wake-up.
constexpr std::chrono::milliseconds kPollInterval{100};

constexpr const char* kJson = "application/json";

// The routes that need no API key (the page asks for the key to use the API).
bool is_public(const std::string& path) { return path == "/health" || path == "/"; }

// A metrics label for a path: the routes we serve, "other" for the rest (so that probes of
// random paths cannot grow the label set without bound).
std::string route_label(const std::string& path) {
  for (const char* route :
       {"/v1/completions", "/v1/chat/completions", "/v1/models", "/health", "/metrics", "/", kPrefillRoute})
    if (path == route) return route;
  return "other";
}

ApiError status_error(int status) {
  switch (status) {
    case 404: return ApiError(404, "invalid_request_error", "no such route", "", "not_found");
    case 405: return ApiError(405, "invalid_request_error", "method not allowed for this route");
    case 413: return ApiError(413, "invalid_request_error", "the request body is too large", "", "body_too_large");
    default: return ApiError(status, status >= 500 ? "server_error" : "invalid_request_error",
                             fmt::format("the request failed with HTTP status {}", status));
  }
}

// A request's job as its HTTP thread follows it.
struct Follower {
  Scheduler& scheduler;
  std::shared_ptr<GenerationJob> job;
  PeerProbe probe;
  std::string text;  // taken from the job, not yet sent

  // Waits for the next news; false when the client left (the job is then cancelled).
  bool next(JobUpdate& u) {
    u = job->wait(kPollInterval);
    text += u.text;
    if (!probe.client_gone()) return true;
    scheduler.cancel(*job);
    return false;
  }
  // Waits until the job holds a sequence or has ended; false when the client left.
  bool admitted(JobUpdate& u) {
    do {
      if (!next(u)) return false;
    } while (!u.admitted);
    return true;
  }
};

}  // namespace

void send_error(httplib::Response& res, const ApiError& error) {
  res.status = error.status();
  if (error.status() == 429) res.set_header("Retry-After", std::to_string(kRetryAfterSeconds));
  // OpenAI's clients retry 5xx answers by default; a request that ran out of the server's time
  // limit would run out of it again (the header is theirs: openai-node, openai-python).
  if (error.code() == "request_timeout") res.set_header("x-should-retry", "false");
  res.set_content(dump_json(error.to_json()), kJson);
}

Routes::Routes(Engine& engine, Scheduler& scheduler, Metrics& metrics, const ServerOptions& options)
    : engine_(engine), scheduler_(scheduler), metrics_(metrics), options_(options),
      chat_prompts_(engine), started_(static_cast<int64_t>(std::time(nullptr))),
      seeds_(std::random_device{}()) {
  if (options_.ctx < 1) fail("the server's context must be resolved before the routes are made");
  if (options_.role == ServerRole::kDecode)
    prefill_client_ = std::make_unique<const PrefillClient>(parse_prefill_url(options_.prefill_url), options_.api_key,
                                                            engine_.model_id(), engine_.options().max_batch);
}

void Routes::install(httplib::Server& http) {
  auto guarded = [](auto handler) {
    return [handler](const httplib::Request& req, httplib::Response& res) {
      try {
        handler(req, res);
      } catch (const ApiError& e) {
        send_error(res, e);
      } catch (const std::exception& e) {
        send_error(res, ApiError(500, "server_error", e.what()));
      }
    };
  };
  http.Post("/v1/completions", guarded([this](const auto& req, auto& res) { generate(req, res, Endpoint::kCompletions); }));
  http.Post("/v1/chat/completions", guarded([this](const auto& req, auto& res) { generate(req, res, Endpoint::kChat); }));
  http.Get("/v1/models", guarded([this](const auto&, auto& res) {
    res.set_content(dump_json(models_list(options_.model_id, started_, chat_prompts_.format())), kJson);
  }));
  if (options_.role == ServerRole::kPrefill)
    http.Post(kPrefillRoute, guarded([this](const auto& req, auto& res) { prefill(req, res); }));
  http.Get("/health", guarded([this](const auto&, auto& res) { health(res); }));
  http.Get("/metrics", guarded([this](const auto&, auto& res) { metrics(res); }));
  http.Get("/", guarded([](const auto&, auto& res) {
    const std::string_view page = web_page_html();
    res.set_content(page.data(), page.size(), "text/html; charset=utf-8");
  }));
  http.set_pre_routing_handler([this](const httplib::Request& req, httplib::Response& res) {
    if (options_.api_key.empty() || is_public(req.path) ||
        bearer_matches(req.get_header_value("Authorization"), options_.api_key))
      return httplib::Server::HandlerResponse::Unhandled;
    send_error(res, ApiError(401, "invalid_request_error",
                             "a valid API key is required: send 'Authorization: Bearer KEY' (--api-key)", "",
                             "invalid_api_key"));
    return httplib::Server::HandlerResponse::Handled;
  });
  // Statuses httplib sets itself (404, 413, ...) get an error object too.
  http.set_error_handler(httplib::Server::HandlerWithResponse([](const httplib::Request&, httplib::Response& res) {
    if (!res.body.empty()) return httplib::Server::HandlerResponse::Unhandled;
    send_error(res, status_error(res.status));
    return httplib::Server::HandlerResponse::Handled;
  }));
  http.set_logger([this](const httplib::Request& req, const httplib::Response& res) {
    metrics_.count_request(route_label(req.path), res.status);
    if (res.status == 429) metrics_.count_rejected();
  });
}

uint64_t Routes::next_seed() {
  std::lock_guard lock(mutex_);
  return seeds_();
}

ResponseHeader Routes::next_header(Endpoint endpoint) {
  std::lock_guard lock(mutex_);
  const char* prefix = endpoint == Endpoint::kChat ? "chatcmpl" : "cmpl";
  return {fmt::format("{}-{:x}-{}", prefix, started_, next_id_++), static_cast<int64_t>(std::time(nullptr)),
          options_.model_id};
}

std::vector<int32_t> Routes::completion_prompt(const CompletionRequest& request) const {
  if (const auto* ids = std::get_if<std::vector<int32_t>>(&request.prompt)) {
    const int32_t n_vocab = engine_.model().config().n_vocab;
    for (int32_t id : *ids)
      if (id >= n_vocab) fail_request("prompt", "token id {} is outside the vocabulary [0, {})", id, n_vocab);
    return *ids;
  }
  // As `flashmem run -p`: BOS as the vocabulary adds it, special-token text kept as text.
  return engine_.tokenizer().encode(std::get<std::string>(request.prompt), /*add_special=*/true, false);
}

JobInput Routes::job_input(std::vector<int32_t> prompt, const GenerationParams& params,
                           const char* prompt_param) const {
  if (params.model && *params.model != options_.model_id)
    throw ApiError(404, "invalid_request_error",
                   fmt::format("the model '{}' is not served here; this server serves '{}'", *params.model,
                               options_.model_id),
                   "model", "model_not_found");
  const auto n = static_cast<int64_t>(prompt.size());
  if (n == 0) fail_request(prompt_param, "the prompt tokenizes to nothing");
  if (n >= options_.ctx)
    throw ApiError(400, "invalid_request_error",
                   fmt::format("the prompt has {} tokens; the context holds {} (--ctx), with room for at "
                               "least one new token",
                               n, options_.ctx),
                   prompt_param, "context_length_exceeded");
  const int64_t max_tokens = params.max_tokens.value_or(options_.ctx - n);
  if (max_tokens > options_.ctx - n)
    throw ApiError(400, "invalid_request_error",
                   fmt::format("the prompt ({} tokens) + max_tokens ({}) exceed the context of {} tokens (--ctx)",
                               n, max_tokens, options_.ctx),
                   "max_tokens", "context_length_exceeded");
  return JobInput{.prompt = std::move(prompt),
                  .max_tokens = max_tokens,
                  .sampling = params.sampling,
                  .stop = params.stop,
                  .full_attention = params.full_attention};
}

void Routes::generate(const httplib::Request& req, httplib::Response& res, Endpoint endpoint) {
  const double arrived = now_seconds();
  if (options_.role == ServerRole::kPrefill)
    throw ApiError(400, "invalid_request_error",
                   "this is a prefill server (--role prefill): it prefills prompts for decode servers "
                   "(POST /internal/prefill); send generation requests to a decode server",
                   "", "wrong_role");
  const json body = parse_json_body(req.body);
  GenerationParams params;
  std::vector<int32_t> prompt;
  if (endpoint == Endpoint::kCompletions) {
    const CompletionRequest r = parse_completion_request(body, next_seed());
    params = r.params;
    prompt = completion_prompt(r);
  } else {
    const ChatRequest r = parse_chat_request(body, next_seed());
    params = r.params;
    prompt = chat_prompts_.render(r.messages);
  }
  const char* prompt_param = endpoint == Endpoint::kChat ? "messages" : "prompt";
  JobInput input = job_input(std::move(prompt), params, prompt_param);
  input.arrived_at = arrived;
  if (prefill_client_) {
    const double limit = options_.scheduler.request_timeout_seconds;
    // The call may use what is left of the request's time limit (a little was spent parsing).
    prefill_client_->hand_off(input, limit > 0 ? std::max(limit - (now_seconds() - arrived), 1e-3) : 0);
  }
  auto job = std::make_shared<GenerationJob>(std::move(input));
  try {
    scheduler_.submit(job);
  } catch (const ApiError&) {
    // Refused (busy, stopping): its handed-off entry would wait in the store for nobody. Deleting
    // it touches the slow tier only, not the engine's decode state.
    if (!job->input().attach_id.empty()) engine_.forget_sequence(job->input().attach_id);
    throw;
  }
  auto follower = std::make_shared<Follower>(
      Follower{scheduler_, job, PeerProbe(req.remote_addr, req.remote_port, req.local_port), ""});
  JobUpdate u;
  if (!follower->admitted(u)) return;  // the client left: nobody reads the response
  if (u.error) throw *u.error;
  const ResponseHeader header = next_header(endpoint);
  if (!params.stream) {
    while (!u.finished)
      if (!follower->next(u)) return;
    if (u.error) throw *u.error;
    res.set_content(dump_json(completion_object(endpoint, header, follower->text, u.finish_reason, u.usage)), kJson);
    return;
  }
  res.set_header("Cache-Control", "no-cache");
  const bool include_usage = params.include_usage;
  auto first = std::make_shared<bool>(true);
  auto last = std::make_shared<JobUpdate>(u);
  res.set_chunked_content_provider(
      kEventStreamType, [follower, header, endpoint, include_usage, first, last](size_t, httplib::DataSink& sink) {
        JobUpdate& v = *last;
        if (!v.finished && !follower->next(v)) return false;
        auto send = [&](const std::string& event) {
          if (sink.write(event.data(), event.size())) return true;
          follower->scheduler.cancel(*follower->job);  // the client left mid-stream
          return false;
        };
        if (!follower->text.empty() || (*first && endpoint == Endpoint::kChat)) {
          const bool ok = send(sse_event(stream_chunk(endpoint, header, follower->text, std::nullopt, include_usage, *first)));
          follower->text.clear();
          *first = false;
          if (!ok) return false;
        }
        if (!v.finished) return true;
        if (v.error) {
          if (!send(sse_event(v.error->to_json()))) return false;
        } else {
          json finish = stream_chunk(endpoint, header, "", v.finish_reason, include_usage, false);
          finish["kv_memory"] = kv_memory_json(v.usage.memory);
          if (v.usage.handoff.prefilled_tokens > 0) finish["handoff"] = handoff_json(v.usage.handoff);
          if (!send(sse_event(finish))) return false;
          if (include_usage && !send(sse_event(usage_chunk(endpoint, header, v.usage)))) return false;
        }
        if (!send(sse_done())) return false;
        sink.done();
        return true;
      });
}

void Routes::prefill(const httplib::Request& req, httplib::Response& res) {
  const double arrived = now_seconds();
  const PrefillCall call = parse_prefill_call(parse_json_body(req.body));
  if (call.model_id != engine_.model_id())
    throw ApiError(409, "invalid_request_error",
                   fmt::format("this prefill server serves '{}' (model id {}); the request is for model id {}",
                               options_.model_id, model_id_text(engine_.model_id()), model_id_text(call.model_id)),
                   "model_id", "model_mismatch");
  GenerationParams params;
  params.max_tokens = call.n_ctx - static_cast<int64_t>(call.prompt.size());
  params.full_attention = call.full_attention;
  JobInput input = job_input(call.prompt, params, "prompt");
  input.arrived_at = arrived;
  // 128 random bits: unique across the prefill servers sharing one store.
  input.persist_id = fmt::format("hof-{:016x}{:016x}", next_seed(), next_seed());
  const std::string id = input.persist_id;
  auto job = std::make_shared<GenerationJob>(std::move(input));
  scheduler_.submit(job);
  Follower follower{scheduler_, job, PeerProbe(req.remote_addr, req.remote_port, req.local_port), ""};
  JobUpdate u;
  do {
    if (!follower.next(u)) return;  // the decode server left (an entry it persisted expires with the tier's ttl)
  } while (!u.finished);
  if (u.error) throw *u.error;
  const PrefillAnswer answer{.sequence = id,
                             .n_tokens = static_cast<int64_t>(call.prompt.size()),
                             .model_id = engine_.model_id(),
                             .prefill_seconds = now_seconds() - arrived};
  res.set_content(dump_json(to_json(answer)), kJson);
}

void Routes::health(httplib::Response& res) const {
  const SchedulerGauges g = metrics_.gauges();
  json body = {{"status", "ok"},
                     {"model", options_.model_id},
                     {"chat_prompt", chat_prompts_.format()},
                     {"active_sequences", g.active_sequences},
                     {"queue_length", g.queue_length}};
  json kv = {{"policy", "none"}, {"resident_fraction", 1.0}};  // the contiguous cache holds it all
  if (const auto& paged = options_.scheduler.sequence.paged) {
    kv["policy"] = to_string(paged->policy);
    // < 0: the policy's own (recency:F and random:F their F, window its sink and tail, quest:K K pages)
    kv["resident_fraction"] = paged->budget > 0 ? json(paged->budget) : json();
    // --budget-tokens: the fixed resident cap of every request (null: none)
    kv["budget_tokens"] = paged->budget_tokens > 0 ? json(paged->budget_tokens) : json();
  }
  kv["budget_bytes"] = engine_.options().kv_budget_bytes;
  body["kv"] = kv;
  body["request_timeout_seconds"] = options_.scheduler.request_timeout_seconds;
  body["role"] = to_string(options_.role);
  body["model_identity"] = model_id_text(engine_.model_id());  // what a hand-off checks (server/handoff.h)
  if (prefill_client_) body["prefill_url"] = prefill_client_->url().text();
  res.set_content(dump_json(body), kJson);
}

void Routes::metrics(httplib::Response& res) const {
  const MemoryFacts facts{.weights_bytes = engine_.model().decode_weight_bytes(),
                          .kv_budget_bytes = engine_.options().kv_budget_bytes,
                          .process_rss_bytes = proc_status_bytes("VmRSS")};
  res.set_content(metrics_.render(facts), "text/plain; version=0.0.4; charset=utf-8");
}

}  // namespace flashmem::server
