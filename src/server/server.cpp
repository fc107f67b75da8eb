#include "server/server.h"

#include <csignal>

#include "util/error.h"

namespace flashmem::server {

Server::Server(std::unique_ptr<Engine> engine, ServerOptions options)
    : engine_(std::move(engine)), options_(std::move(options)) {
  if (!engine_) fail("the server needs an engine");
  // A client that leaves mid-response must cost its request, not the process: writes to its
  // closed socket fail with EPIPE instead of raising SIGPIPE.
  std::signal(SIGPIPE, SIG_IGN);
  const ModelConfig& c = engine_->model().config();
  if (options_.ctx < 0) fail("--ctx must be >= 1, got {}", options_.ctx);
  if (options_.ctx == 0) options_.ctx = c.context_length;
  if (options_.port < 0 || options_.port > 65535) fail("--port must be in [0, 65535], got {}", options_.port);
  check_role(options_.role, options_.scheduler.sequence, parse_store_spec(engine_->options().kv_store),
             options_.prefill_url);
  scheduler_ = std::make_unique<Scheduler>(*engine_, metrics_, options_.scheduler);
  routes_ = std::make_unique<Routes>(*engine_, *scheduler_, metrics_, options_);
  routes_->install(http_);
  const auto threads = static_cast<size_t>(options_.scheduler.max_sequences + options_.scheduler.max_queue +
                                           kSpareHttpThreads);
  http_.new_task_queue = [threads] { return new httplib::ThreadPool(threads); };
  http_.set_payload_max_length(options_.max_body_bytes);
  if (options_.port == 0) {
    port_ = http_.bind_to_any_port(options_.host);
  } else if (http_.bind_to_port(options_.host, options_.port)) {
    port_ = options_.port;
  } else {
    port_ = -1;
  }
  if (port_ < 0) {
    scheduler_->stop();
    fail("cannot listen on {}:{} (address in use, or not an address of this machine)", options_.host,
         options_.port);
  }
}

Server::~Server() { stop(); }

void Server::start() {
  thread_ = std::thread([this] { http_.listen_after_bind(); });
  while (!http_.is_running()) std::this_thread::yield();
}

void Server::stop(double grace_seconds) {
  scheduler_->stop(grace_seconds);  // every waiting request thread now has its answer
  http_.stop();
  if (thread_.joinable()) thread_.join();
}

}  // namespace flashmem::server
