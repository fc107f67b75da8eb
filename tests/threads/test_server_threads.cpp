// The server's threads under load (run under ThreadSanitizer by `make test-tsan`): HTTP threads
// parsing, queueing and streaming, the decode thread batching, a metrics scraper and clients
// that leave mid-stream, all at once; every answer equals the one it gets alone.
#include <gtest/gtest.h>

#include <atomic>
#include <thread>

#include "../common/serve_fixture.h"

namespace flashmem::test {
namespace {

TEST(ServerThreads, ConcurrentClientsScrapersAndLeaversAgree) {
  auto server = start_server(limited(3, 16));
  const int port = server->port();
  const Tokenizer tokenizer = Tokenizer::from_gguf(Model::load(kNeedleModel)->file());
  constexpr int kClients = 5, kRounds = 2;
  std::vector<json> bodies;
  for (int i = 0; i < kClients; ++i)
    bodies.push_back({{"prompt", task_prompt(tokenizer, 60 + 40 * i, 30 + i)},
                      {"max_tokens", 6},
                      {"temperature", 0},
                      {"stream", i % 2 == 0}});
  auto text_of = [&](const json& body) {
    const HttpReply r = post(port, "/v1/completions", body);
    EXPECT_EQ(r.status, 200) << r.body;
    return body["stream"].get<bool>() ? streamed_text(parse_sse(r.body)) : completion_text(r.json_body());
  };
  std::vector<std::string> alone;
  for (const json& b : bodies) alone.push_back(text_of(b));

  std::atomic<bool> running{true};
  std::thread scraper([&] {
    while (running.load()) {
      EXPECT_EQ(get(port, "/metrics").status, 200);
      EXPECT_EQ(get(port, "/health").status, 200);
    }
  });
  std::thread leaver([&] {
    const json body = {{"prompt", "The road goes on"}, {"max_tokens", 4000}, {"stream", true}};
    for (int i = 0; i < kRounds; ++i) {
      RawConnection c(port, http_post_text("/v1/completions", body.dump()));
      c.read_until("data: ");
      c.close();
    }
  });
  std::vector<std::thread> clients;
  for (int i = 0; i < kClients; ++i)
    clients.emplace_back([&, i] {
      for (int round = 0; round < kRounds; ++round) EXPECT_EQ(text_of(bodies[i]), alone[i]) << "client " << i;
    });
  for (auto& t : clients) t.join();
  leaver.join();
  running.store(false);
  scraper.join();
  EXPECT_TRUE(eventually([&] { return get(port, "/health").json_body()["active_sequences"] == 0; }));
  server->stop(1);
}

}  // namespace
}  // namespace flashmem::test
