// --request-timeout: a request still running past the server's time limit ends with an error
// (non-streamed: HTTP 504, code request_timeout, and `x-should-retry: false` so OpenAI clients do
// not run it again; streamed: an error event, then [DONE]), and its sequence and slow-tier file
// are freed at once; the server keeps serving. The limit is a fraction of what the same long
// request takes on this machine without one, so the test holds on a fast or a busy machine.
#include <gtest/gtest.h>

#include <chrono>
#include <filesystem>

#include "../common/serve_fixture.h"
#include "../common/temp_dir.h"

namespace flashmem::test {
namespace {

json long_request(const std::string& prompt) {
  return {{"model", "needle-lm"}, {"prompt", prompt}, {"max_tokens", 4}, {"temperature", 0}};
}

TEST(ServerTimeout, ARequestPastTheLimitEndsWithAnErrorAndFreesItsSequence) {
  const Tokenizer tokenizer = Tokenizer::from_gguf(Model::load(kNeedleModel)->file());
  // A 4K-token prompt: its prefill is the bulk of the request's time.
  const std::string prompt = task_prompt(tokenizer, 4096, 5);
  const std::filesystem::path kv = fresh_dir("serve_timeout_kv");
  ServeConfig config;
  config.policy = "lsa";
  config.kv_dir = kv.string();
  double took = 0;
  {
    auto untimed = start_server(config);
    const auto start = std::chrono::steady_clock::now();
    const HttpReply r = post(untimed->port(), "/v1/completions", long_request(prompt));
    took = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    ASSERT_EQ(r.status, 200) << r.body;
  }
  // A fifth of that: the long request cannot finish, a two-token one easily does.
  config.request_timeout = took / 5;
  auto server = start_server(config);
  const int port = server->port();

  const HttpReply whole = post(port, "/v1/completions", long_request(prompt));
  ASSERT_EQ(whole.status, 504) << whole.body;
  EXPECT_EQ(whole.json_body()["error"]["code"], "request_timeout");
  EXPECT_EQ(whole.json_body()["error"]["type"], "server_error");
  EXPECT_NE(whole.json_body()["error"]["message"].get<std::string>().find("--request-timeout"), std::string::npos);
  auto retry = whole.headers.find("x-should-retry");
  ASSERT_NE(retry, whole.headers.end());
  EXPECT_EQ(retry->second, "false");

  json streamed = long_request(prompt);
  streamed["stream"] = true;
  const HttpReply stream = post(port, "/v1/completions", streamed);
  ASSERT_EQ(stream.status, 200) << stream.body;  // the events had begun
  const SseStream events = parse_sse(stream.body);
  EXPECT_TRUE(events.done) << stream.body;
  ASSERT_FALSE(events.events.empty()) << stream.body;
  EXPECT_EQ(events.events.back()["error"]["code"], "request_timeout") << stream.body;

  // Both sequences are gone with their slow-tier files, and the server answers.
  EXPECT_TRUE(eventually([&] { return get(port, "/health").json_body()["active_sequences"] == 0; }));
  EXPECT_TRUE(names_in(kv).empty());
  EXPECT_EQ(get(port, "/health").json_body()["request_timeout_seconds"], config.request_timeout);
  // Both count in /metrics (the streamed one answered 200, so only this counter shows it).
  EXPECT_NE(get(port, "/metrics").body.find("flashmem_requests_timed_out_total 2\n"), std::string::npos)
      << get(port, "/metrics").body;
  const HttpReply small = post(port, "/v1/completions",
                               {{"prompt", "The river runs"}, {"max_tokens", 2}, {"temperature", 0}});
  EXPECT_EQ(small.status, 200) << small.body;
  std::filesystem::remove_all(kv);
}

}  // namespace
}  // namespace flashmem::test
