// `flashmem serve`: an OpenAI-compatible HTTP server over one Engine. It owns the engine, the
// scheduler (continuous batching on one decode thread, server/scheduler.h), the metrics and the
// cpp-httplib server with the routes (server/routes.h).
//
// Threads: HTTP requests run on a pool of max_sequences + max_queue + kSpareHttpThreads threads
// (each waiting request holds one); the engine runs on the scheduler's thread only.
#pragma once
#include <memory>
#include <thread>

#include <httplib.h>

#include "flashmem/engine.h"
#include "server/metrics.h"
#include "server/routes.h"
#include "server/scheduler.h"
#include "server/server_options.h"

namespace flashmem::server {

// HTTP threads beyond one per admitted or queued request: /health, /metrics and 429 answers
// stay quick while every request thread is waiting for its job.
inline constexpr int64_t kSpareHttpThreads = 4;

class Server {
 public:
  // Takes the engine (its indexer, KV store and budget already set), starts the scheduler and
  // binds host:port. Throws Error on bad options or when the address cannot be bound.
  Server(std::unique_ptr<Engine> engine, ServerOptions options);
  ~Server();
  Server(const Server&) = delete;
  Server& operator=(const Server&) = delete;

  int port() const { return port_; }
  const ServerOptions& options() const { return options_; }

  // Serves on a background thread until stop(); returns once connections are accepted.
  void start();
  // Stops taking requests (new ones get 503), lets running and queued ones finish for up to
  // `grace_seconds`, fails the rest, and closes the listening socket. Idempotent.
  void stop(double grace_seconds = 0);

 private:
  std::unique_ptr<Engine> engine_;
  ServerOptions options_;
  Metrics metrics_;
  std::unique_ptr<Scheduler> scheduler_;
  std::unique_ptr<Routes> routes_;
  httplib::Server http_;
  int port_ = 0;
  std::thread thread_;  // the listening thread
};

}  // namespace flashmem::server
