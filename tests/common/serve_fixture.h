// `flashmem serve` in the test's own process on a free loopback port (server/server.h), with the
// bundled needle-lm, and the HTTP helpers its tests share: JSON posts through cpp-httplib's
// client, server-sent-event parsing, and a raw connection that can leave mid-request.
#pragma once
#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include <httplib.h>
#include <nlohmann/json.hpp>

#include "data/task.h"
#include "flashmem/engine.h"
#include "indexer/indexer_model.h"
#include "server/server.h"

namespace flashmem::test {

using nlohmann::json;

const std::string kNeedleModel = std::string(FLASHMEM_TEST_DATA) + "/../../models/needle-lm.gguf";
const std::string kNeedleIndexer = std::string(FLASHMEM_TEST_DATA) + "/../../models/needle-lm-indexer.gguf";

struct ServeConfig {
  std::string model = kNeedleModel;
  std::string policy;         // empty: the contiguous cache; "lsa" loads the bundled indexer
  std::string kv_dir;         // the disk slow tier of a policy (a directory); empty: ram
  double budget = -1;         // the policy's resident fraction (--budget); < 0: its own
  int64_t max_sequences = 4;
  int64_t max_queue = 8;
  uint64_t kv_budget_bytes = 0;
  std::string api_key;
  int64_t ctx = 0;
  int threads = 2;
  double request_timeout = 0;  // seconds; 0: no limit
  uint64_t reuse_quota_bytes = 0;  // conversation reuse (a policy and kv_dir needed); 0 = off
};

// A contiguous-cache server that runs at most `max_sequences` requests with `max_queue` waiting.
inline ServeConfig limited(int64_t max_sequences, int64_t max_queue) {
  ServeConfig c;
  c.max_sequences = max_sequences;
  c.max_queue = max_queue;
  return c;
}

// The server's options as `flashmem serve` makes them from the same flags.
inline std::unique_ptr<server::Server> start_server(const ServeConfig& c) {
  auto model = Model::load(c.model);
  EngineOptions eo{.n_threads = c.threads,
                   .kv_store = c.kv_dir.empty() ? "ram" : "disk:" + c.kv_dir,
                   .kv_budget_bytes = c.kv_budget_bytes};
  server::ServerOptions o;
  o.host = "127.0.0.1";
  o.port = 0;
  o.api_key = c.api_key;
  o.model_id = "needle-lm";
  o.ctx = c.ctx;
  o.scheduler.max_sequences = c.max_sequences;
  o.scheduler.max_queue = c.max_queue;
  o.scheduler.reuse_quota_bytes = c.reuse_quota_bytes;
  o.scheduler.sequence.kv_type = DType::F16;
  o.scheduler.request_timeout_seconds = c.request_timeout;
  if (!c.policy.empty()) {
    PagedKvOptions p;
    p.policy = parse_policy_spec(c.policy);
    p.budget = c.budget;
    if (c.policy == "lsa") p.indexer = std::make_shared<const IndexerModel>(IndexerModel::load(kNeedleIndexer));
    o.scheduler.sequence.paged = p;
  }
  auto s = std::make_unique<server::Server>(std::make_unique<Engine>(model, eo), o);
  s->start();
  return s;
}

struct HttpReply {
  int status = -1;  // -1: no response
  std::string body;
  httplib::Headers headers;
  json json_body() const { return json::parse(body, nullptr, false); }
};

inline httplib::Client client(int port) {
  httplib::Client cli("127.0.0.1", port);
  cli.set_read_timeout(std::chrono::seconds(120));  // a busy test machine decodes slowly
  return cli;
}

inline HttpReply reply_of(const httplib::Result& r) {
  if (!r) return {};
  return {r->status, r->body, r->headers};
}

inline HttpReply post_text(int port, const std::string& path, const std::string& body,
                           const httplib::Headers& headers = {}) {
  auto cli = client(port);
  return reply_of(cli.Post(path, headers, body, "application/json"));
}

inline HttpReply post(int port, const std::string& path, const json& body, const httplib::Headers& headers = {}) {
  return post_text(port, path, body.dump(), headers);
}

inline HttpReply get(int port, const std::string& path, const httplib::Headers& headers = {}) {
  auto cli = client(port);
  return reply_of(cli.Get(path, headers));
}

// The events of a server-sent-event body: the JSON of every "data: " line, and whether the
// stream ended with "data: [DONE]" (which is not in the list).
struct SseStream {
  std::vector<json> events;
  bool done = false;
};

inline SseStream parse_sse(const std::string& body) {
  SseStream s;
  size_t at = 0;
  while (at < body.size()) {
    const size_t end = std::min(body.find('\n', at), body.size());
    const std::string line = body.substr(at, end - at);
    at = end + 1;
    if (line.empty()) continue;
    EXPECT_EQ(line.rfind("data: ", 0), 0u) << "not an SSE data line: " << line;
    EXPECT_FALSE(s.done) << "data after [DONE]";
    const std::string data = line.substr(6);
    if (data == "[DONE]") {
      s.done = true;
    } else {
      s.events.push_back(json::parse(data, nullptr, false));
      EXPECT_FALSE(s.events.back().is_discarded()) << data;
    }
  }
  return s;
}

// The text of a completion or chat response, streamed or not.
inline std::string completion_text(const json& response) {
  const json& choice = response.at("choices").at(0);
  if (choice.contains("text")) return choice["text"].get<std::string>();
  return choice.at("message").at("content").get<std::string>();
}

inline std::string streamed_text(const SseStream& s) {
  std::string text;
  for (const json& e : s.events) {
    if (e.contains("error") || e.at("choices").empty()) continue;
    const json& choice = e["choices"][0];
    if (choice.contains("text")) text += choice["text"].get<std::string>();
    if (choice.contains("delta") && choice["delta"].contains("content"))
      text += choice["delta"]["content"].get<std::string>();
  }
  return text;
}

// A generated long-context task prompt for needle-lm (text, as `flashmem gen-task` writes it).
inline std::string task_prompt(const Tokenizer& tokenizer, int64_t length, uint64_t seed) {
  data::TaskSpec spec;
  spec.length = length;
  return data::generate_task(spec, seed, tokenizer).prompt;
}

// A plain TCP connection to the server that sends `request` and can then close at any moment
// (a client that leaves mid-request).
class RawConnection {
 public:
  RawConnection(int port, const std::string& request) {
    fd_ = ::socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_port = htons(static_cast<uint16_t>(port));
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    EXPECT_EQ(::connect(fd_, reinterpret_cast<sockaddr*>(&a), sizeof a), 0);
    EXPECT_EQ(::send(fd_, request.data(), request.size(), 0), static_cast<ssize_t>(request.size()));
  }
  ~RawConnection() { close(); }
  // Reads until `needle` appears (or the connection ends); returns what was read.
  std::string read_until(const std::string& needle) {
    std::string got;
    char buf[4096];  // one socket read
    while (got.find(needle) == std::string::npos) {
      const ssize_t n = ::recv(fd_, buf, sizeof buf, 0);
      if (n <= 0) break;
      got.append(buf, static_cast<size_t>(n));
    }
    return got;
  }
  void close() {
    if (fd_ >= 0) ::close(fd_);
    fd_ = -1;
  }

 private:
  int fd_ = -1;
};

inline std::string http_post_text(const std::string& path, const std::string& body) {
  return "POST " + path + " HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\nContent-Length: " +
         std::to_string(body.size()) + "\r\n\r\n" + body;
}

// Polls `condition` every 20 ms for up to `seconds`; its last value.
template <typename F>
bool eventually(F condition, double seconds = 30) {
  const auto end = std::chrono::steady_clock::now() + std::chrono::duration<double>(seconds);
  while (std::chrono::steady_clock::now() < end) {
    if (condition()) return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  return condition();
}

}  // namespace flashmem::test
