// The HTTP routes of `flashmem serve` (cpp-httplib): POST /v1/completions and
// /v1/chat/completions (streamed as server-sent events with stream: true), GET /v1/models,
// /health, /metrics and the page at / (server/web_page.h); --api-key checking; OpenAI-style
// error objects for every failure.
//
// A generation request is parsed and checked on its HTTP thread (tokenizing included), queued
// on the scheduler, and then waited for: the thread polls the job and its client's connection,
// and cancels the job when the client leaves, queued or running.
#pragma once
#include <cstdint>
#include <memory>
#include <mutex>
#include <random>
#include <string>

#include <httplib.h>

#include "flashmem/engine.h"
#include "server/api_error.h"
#include "server/chat_prompt.h"
#include "server/generation_job.h"
#include "server/metrics.h"
#include "server/prefill_client.h"
#include "server/request.h"
#include "server/responses.h"
#include "server/scheduler.h"
#include "server/server_options.h"

namespace flashmem::server {

class Routes {
 public:
  // `options.ctx` must be resolved (> 0). All references must outlive the routes.
  Routes(Engine& engine, Scheduler& scheduler, Metrics& metrics, const ServerOptions& options);
  // Registers the routes and the auth, error and logging hooks on `http`.
  void install(httplib::Server& http);

 private:
  void generate(const httplib::Request& req, httplib::Response& res, Endpoint endpoint);
  // POST /internal/prefill of --role prefill (server/handoff.h).
  void prefill(const httplib::Request& req, httplib::Response& res);
  // The job of a parsed request; `prompt_param` names the field the prompt came from.
  JobInput job_input(std::vector<int32_t> prompt, const GenerationParams& params, const char* prompt_param) const;
  std::vector<int32_t> completion_prompt(const CompletionRequest& request) const;
  void health(httplib::Response& res) const;
  void metrics(httplib::Response& res) const;
  uint64_t next_seed();
  ResponseHeader next_header(Endpoint endpoint);

  Engine& engine_;
  Scheduler& scheduler_;
  Metrics& metrics_;
  const ServerOptions& options_;
  const ChatPrompts chat_prompts_;
  std::unique_ptr<const PrefillClient> prefill_client_;  // --role decode
  const int64_t started_;  // Unix seconds
  std::mutex mutex_;       // guards the two below
  std::mt19937_64 seeds_;  // seeds of requests without one
  uint64_t next_id_ = 0;
};

// Writes `error` as the response (status, JSON body, Retry-After for 429).
void send_error(httplib::Response& res, const ApiError& error);

}  // namespace flashmem::server
