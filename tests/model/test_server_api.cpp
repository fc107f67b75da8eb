// `flashmem serve` through HTTP (cpp-httplib's client against a server in this process, on a
// free loopback port, with the bundled needle-lm): completions and chat, streamed and not;
// greedy answers equal to `flashmem run`'s; batched answers equal to answers alone; a full
// queue's 429; bad input's error objects (and the server keeps serving); the API key; clients
// that leave; the Prometheus metrics.
#include <gtest/gtest.h>

#include <filesystem>
#include <future>
#include <map>
#include <regex>
#include <sstream>

#include "chat/chat_template.h"
#include "gguf/gguf.h"
#include "../common/cli_run.h"
#include "../common/serve_fixture.h"
#include "../common/temp_dir.h"

namespace flashmem::test {
namespace {

const Tokenizer& needle_tokenizer() {
  static const Tokenizer tokenizer = Tokenizer::from_gguf(Model::load(kNeedleModel)->file());
  return tokenizer;
}

json greedy_completion(const std::string& prompt, int64_t max_tokens) {
  return {{"model", "needle-lm"}, {"prompt", prompt}, {"max_tokens", max_tokens}, {"temperature", 0}};
}

class ServerApi : public ::testing::Test {
 protected:
  void SetUp() override { server_ = start_server(ServeConfig()); }
  int port() const { return server_->port(); }
  std::unique_ptr<server::Server> server_;
};

TEST_F(ServerApi, CompletionAnswersTheNeedle) {
  const data::TaskSample task = data::generate_task({}, 1, needle_tokenizer());
  const HttpReply r = post(port(), "/v1/completions", greedy_completion(task.prompt, 12));
  ASSERT_EQ(r.status, 200) << r.body;
  const json j = r.json_body();
  EXPECT_EQ(j["object"], "text_completion");
  EXPECT_EQ(j["model"], "needle-lm");
  EXPECT_EQ(j["choices"][0]["index"], 0);
  EXPECT_EQ(j["choices"][0]["finish_reason"], "length");
  EXPECT_NE(completion_text(j).find(task.answers.at(0)), std::string::npos) << completion_text(j);
  EXPECT_EQ(j["usage"]["prompt_tokens"], static_cast<int64_t>(task.tokens.size()));
  EXPECT_EQ(j["usage"]["completion_tokens"], 12);
  EXPECT_EQ(j["usage"]["total_tokens"], static_cast<int64_t>(task.tokens.size()) + 12);
}

TEST_F(ServerApi, StreamedCompletionIsTheSameTextInChunks) {
  const std::string prompt = task_prompt(needle_tokenizer(), 512, 3);
  const HttpReply whole = post(port(), "/v1/completions", greedy_completion(prompt, 16));
  ASSERT_EQ(whole.status, 200) << whole.body;
  json body = greedy_completion(prompt, 16);
  body["stream"] = true;
  body["stream_options"] = {{"include_usage", true}};
  const HttpReply r = post(port(), "/v1/completions", body);
  ASSERT_EQ(r.status, 200) << r.body;
  EXPECT_NE(r.headers.find("Content-Type")->second.find("text/event-stream"), std::string::npos);
  const SseStream s = parse_sse(r.body);
  EXPECT_TRUE(s.done);
  ASSERT_GE(s.events.size(), 3u);  // text, the finish reason, the usage
  EXPECT_EQ(streamed_text(s), completion_text(whole.json_body()));
  for (size_t i = 0; i + 1 < s.events.size(); ++i) {
    EXPECT_EQ(s.events[i]["object"], "text_completion");
    EXPECT_TRUE(s.events[i]["usage"].is_null());  // include_usage: null until the last chunk
  }
  EXPECT_EQ(s.events[s.events.size() - 2]["choices"][0]["finish_reason"], "length");
  const json& usage = s.events.back();
  EXPECT_TRUE(usage["choices"].empty());
  EXPECT_EQ(usage["usage"], whole.json_body()["usage"]);
}

// needle-lm with a chat template of its own: the server must render chats with it, and a
// template that refuses the messages is the client's 400.
TEST(ServerChatTemplate, ChatsAreRenderedWithTheModelsTemplate) {
  const std::filesystem::path model = test_temp_path("fm_serve", "templated.gguf");
  GgufWriter w = GgufWriter::from_file(Model::load(kNeedleModel)->file());
  w.set_string("tokenizer.chat_template",
               "{% for m in messages %}{% if m.role == 'system' %}{{ raise_exception('System role not supported') }}"
               "{% endif %}{{ m.role }} says {{ m.content }}\n{% endfor %}{% if add_generation_prompt %}answer:{% endif %}");
  w.write(model.string());
  ServeConfig c;
  c.model = model.string();
  const auto server = start_server(c);
  const HttpReply models = get(server->port(), "/v1/models");
  ASSERT_EQ(models.status, 200) << models.body;
  const std::string format = models.json_body()["data"][0]["chat_prompt"].get<std::string>();
  EXPECT_NE(format.find("chat template"), std::string::npos) << format;
  EXPECT_EQ(format.find("fallback"), std::string::npos) << format;

  const std::string question = task_prompt(needle_tokenizer(), 200, 9);
  const json chat = {{"messages", json::array({{{"role", "user"}, {"content", question}}})},
                     {"max_tokens", 8}, {"temperature", 0}};
  const HttpReply r = post(server->port(), "/v1/chat/completions", chat);
  ASSERT_EQ(r.status, 200) << r.body;
  const std::string rendered = "user says " + question + "\nanswer:";
  EXPECT_EQ(r.json_body()["usage"]["prompt_tokens"],
            static_cast<int64_t>(chat::tokenize_chat_prompt(needle_tokenizer(), rendered, true).size()));
  const HttpReply same = post(server->port(), "/v1/completions", greedy_completion(rendered, 8));
  ASSERT_EQ(same.status, 200) << same.body;
  EXPECT_EQ(completion_text(r.json_body()), completion_text(same.json_body()));

  const json refused = {{"messages", json::array({{{"role", "system"}, {"content", "x"}},
                                                  {{"role", "user"}, {"content", "y"}}})}};
  const HttpReply bad = post(server->port(), "/v1/chat/completions", refused);
  EXPECT_EQ(bad.status, 400) << bad.body;
  EXPECT_EQ(bad.json_body()["error"]["param"], "messages") << bad.body;
  EXPECT_NE(bad.body.find("System role not supported"), std::string::npos) << bad.body;
  std::filesystem::remove(model);
}

TEST_F(ServerApi, ChatCompletionStreamedAndNot) {
  const json messages = json::array({{{"role", "system"}, {"content", "Remember the numbers."}},
                                     {{"role", "user"}, {"content", task_prompt(needle_tokenizer(), 300, 5)}}});
  const json body = {{"messages", messages}, {"max_completion_tokens", 10}, {"temperature", 0}};
  const HttpReply whole = post(port(), "/v1/chat/completions", body);
  ASSERT_EQ(whole.status, 200) << whole.body;
  const json j = whole.json_body();
  EXPECT_EQ(j["object"], "chat.completion");
  EXPECT_EQ(j["choices"][0]["message"]["role"], "assistant");
  EXPECT_EQ(j["usage"]["completion_tokens"], 10);
  json streamed = body;
  streamed["stream"] = true;
  const HttpReply r = post(port(), "/v1/chat/completions", streamed);
  ASSERT_EQ(r.status, 200) << r.body;
  const SseStream s = parse_sse(r.body);
  EXPECT_TRUE(s.done);
  ASSERT_GE(s.events.size(), 2u);
  EXPECT_EQ(s.events.front()["object"], "chat.completion.chunk");
  EXPECT_EQ(s.events.front()["choices"][0]["delta"]["role"], "assistant");
  EXPECT_FALSE(s.events.back().contains("usage"));  // no include_usage
  EXPECT_EQ(s.events.back()["choices"][0]["finish_reason"], "length");
  EXPECT_EQ(streamed_text(s), completion_text(j));
}

TEST_F(ServerApi, ModelsAndHealthSayHowChatPromptsAreMade) {
  const HttpReply models = get(port(), "/v1/models");
  ASSERT_EQ(models.status, 200);
  const json m = models.json_body();
  EXPECT_EQ(m["object"], "list");
  ASSERT_EQ(m["data"].size(), 1u);
  EXPECT_EQ(m["data"][0]["id"], "needle-lm");
  EXPECT_NE(m["data"][0]["chat_prompt"].get<std::string>().find("fallback"), std::string::npos);
  const HttpReply health = get(port(), "/health");
  ASSERT_EQ(health.status, 200);
  EXPECT_EQ(health.json_body()["status"], "ok");
  EXPECT_NE(health.json_body()["chat_prompt"].get<std::string>().find("fallback"), std::string::npos);
}

// The page at / (no API key needed) uses the chat route and reads metrics that /metrics has.
TEST_F(ServerApi, PageAtRootReadsMetricsThatExist) {
  const HttpReply page = get(port(), "/");
  ASSERT_EQ(page.status, 200);
  EXPECT_NE(page.headers.find("Content-Type")->second.find("text/html"), std::string::npos);
  EXPECT_NE(page.body.find("\"/v1/chat/completions\""), std::string::npos);
  const std::string metrics = get(port(), "/metrics").body;
  const std::regex name(R"(flashmem_[a-z_]+)");
  int names = 0;
  for (auto it = std::sregex_iterator(page.body.begin(), page.body.end(), name); it != std::sregex_iterator(); ++it) {
    const std::string sample_line = it->str().append(" ");  // an unlabelled sample: "name value"
    EXPECT_NE(metrics.find('\n' + sample_line), std::string::npos) << it->str() << " is not in /metrics";
    ++names;
  }
  EXPECT_GE(names, 10);
}

TEST_F(ServerApi, StopStringsEndTheTextBeforeThem) {
  const data::TaskSample task = data::generate_task({}, 7, needle_tokenizer());
  const HttpReply whole = post(port(), "/v1/completions", greedy_completion(task.prompt, 20));
  ASSERT_EQ(whole.status, 200);
  const std::string text = completion_text(whole.json_body());
  const std::string stop = task.answers.at(0).substr(3, 2);  // inside the answer's digits
  ASSERT_NE(text.find(stop), std::string::npos) << text;
  json body = greedy_completion(task.prompt, 20);
  body["stop"] = json::array({"never appears", stop});
  for (bool stream : {false, true}) {
    body["stream"] = stream;
    const HttpReply r = post(port(), "/v1/completions", body);
    ASSERT_EQ(r.status, 200) << r.body;
    const std::string got = stream ? streamed_text(parse_sse(r.body)) : completion_text(r.json_body());
    EXPECT_EQ(got, text.substr(0, text.find(stop))) << "stream " << stream;
  }
}

// Bad input gets the right status and an OpenAI error object naming the field; after each, the
// server still answers.
TEST_F(ServerApi, InvalidRequestsGetErrorObjects) {
  struct Case {
    std::string body;
    int status;
    std::string param;  // "" = null
  };
  const std::string ok_prompt = R"("prompt": "The road goes on", )";
  const std::vector<Case> cases = {
      {"{not json", 400, ""},
      {"[1, 2]", 400, ""},
      {R"({"max_tokens": 4})", 400, "prompt"},
      {R"({"prompt": 5})", 400, "prompt"},
      {R"({"prompt": ["a", "b"]})", 400, "prompt"},
      {"{" + ok_prompt + R"("max_tokens": -1})", 400, "max_tokens"},
      {"{" + ok_prompt + R"("max_tokens": 0})", 400, "max_tokens"},
      {"{" + ok_prompt + R"("max_tokens": "many"})", 400, "max_tokens"},
      {"{" + ok_prompt + R"("temperature": "hot"})", 400, "temperature"},
      {"{" + ok_prompt + R"("temperature": 3})", 400, "temperature"},
      {"{" + ok_prompt + R"("top_p": 0})", 400, "top_p"},
      {"{" + ok_prompt + R"("top_k": -2})", 400, "top_k"},
      {"{" + ok_prompt + R"("min_p": 1.5})", 400, "min_p"},
      {"{" + ok_prompt + R"("seed": 1.5})", 400, "seed"},
      {"{" + ok_prompt + R"("n": 2})", 400, "n"},
      {"{" + ok_prompt + R"("stop": [1]})", 400, "stop"},
      {"{" + ok_prompt + R"("stop": ["a", "b", "c", "d", "e"]})", 400, "stop"},
      {"{" + ok_prompt + R"("stream": "yes"})", 400, "stream"},
      {"{" + ok_prompt + R"("echo": true})", 400, "echo"},
      {"{" + ok_prompt + R"("logprobs": 3})", 400, "logprobs"},
      {"{" + ok_prompt + R"("policy": "lsa"})", 400, "policy"},
      {"{" + ok_prompt + R"("model": "gpt-4"})", 404, "model"},
      {"{" + ok_prompt + R"("max_tokens": 9000})", 400, "max_tokens"},
      {R"({"prompt": [1, 2, 99999]})", 400, "prompt"},
  };
  for (const Case& c : cases) {
    const HttpReply r = post_text(port(), "/v1/completions", c.body);
    EXPECT_EQ(r.status, c.status) << c.body << " -> " << r.body;
    const json j = r.json_body();
    ASSERT_TRUE(j.contains("error")) << c.body << " -> " << r.body;
    EXPECT_TRUE(j["error"]["message"].is_string());
    EXPECT_TRUE(j["error"]["type"].is_string());
    EXPECT_TRUE(j["error"].contains("code"));
    EXPECT_EQ(j["error"]["param"], c.param.empty() ? json() : json(c.param)) << c.body;
    EXPECT_EQ(get(port(), "/health").status, 200) << "after " << c.body;
  }
  const std::vector<Case> chat_cases = {
      {R"({"messages": []})", 400, "messages"},
      {R"({"messages": [{"role": "wizard", "content": "hi"}]})", 400, "messages"},
      {R"({"messages": [{"role": "user", "content": [{"type": "image_url"}]}]})", 400, "messages"},
      {R"({"messages": [{"role": "user", "content": "hi"}], "tools": [{"type": "function"}]})", 400, "tools"},
  };
  for (const Case& c : chat_cases) {
    const HttpReply r = post_text(port(), "/v1/chat/completions", c.body);
    EXPECT_EQ(r.status, c.status) << c.body << " -> " << r.body;
    EXPECT_EQ(r.json_body()["error"]["param"], c.param) << c.body;
  }
  // A prompt longer than the context.
  const HttpReply long_prompt = post(port(), "/v1/completions", json{{"prompt", task_prompt(needle_tokenizer(), 9000, 1)}});
  EXPECT_EQ(long_prompt.status, 400) << long_prompt.body;
  EXPECT_EQ(long_prompt.json_body()["error"]["code"], "context_length_exceeded");
  // A body beyond the limit is refused before it is read.
  const HttpReply huge = post_text(port(), "/v1/completions", std::string(size_t{20} << 20, ' '));
  EXPECT_EQ(huge.status, 413);
  EXPECT_TRUE(huge.json_body().contains("error")) << huge.body;
  const HttpReply unknown = get(port(), "/v2/nothing");
  EXPECT_EQ(unknown.status, 404);
  EXPECT_TRUE(unknown.json_body().contains("error"));
  // Unknown fields are ignored, as OpenAI clients expect.
  const HttpReply extra = post_text(port(), "/v1/completions", R"({"prompt": "The road", "max_tokens": 2, "user": "x", "frobnicate": [1]})");
  EXPECT_EQ(extra.status, 200) << extra.body;
}

TEST(ServerAuth, ApiKeyIsRequiredExceptForHealth) {
  ServeConfig config;
  config.api_key = "sesame-0123";
  auto server = start_server(config);
  const int port = server->port();
  const std::string body = R"({"prompt": "The road", "max_tokens": 2})";
  for (const httplib::Headers& headers :
       {httplib::Headers{}, httplib::Headers{{"Authorization", "Bearer sesame-0124"}},
        httplib::Headers{{"Authorization", "Bearer sesame-012"}}, httplib::Headers{{"Authorization", "sesame-0123"}}}) {
    const HttpReply r = post_text(port, "/v1/completions", body, headers);
    EXPECT_EQ(r.status, 401) << r.body;
    EXPECT_EQ(r.json_body()["error"]["code"], "invalid_api_key");
    EXPECT_EQ(get(port, "/v1/models", headers).status, 401);
  }
  const httplib::Headers good = {{"Authorization", "Bearer sesame-0123"}};
  EXPECT_EQ(post_text(port, "/v1/completions", body, good).status, 200);
  EXPECT_EQ(get(port, "/v1/models", good).status, 200);
  EXPECT_EQ(get(port, "/metrics", good).status, 200);
  EXPECT_EQ(get(port, "/health").status, 200);
  EXPECT_EQ(get(port, "/").status, 200);
}

// The server's greedy text is `flashmem run`'s for the same prompt, with the contiguous cache
// and with lsa over a disk slow tier.
TEST(ServerMatchesRun, GreedyTextIsRunsText) {
  const data::TaskSample task = data::generate_task({.length = 2048}, 11, needle_tokenizer());
  const std::filesystem::path dir = fresh_dir("serve_vs_run");
  const std::filesystem::path prompt_file = dir / "prompt.txt";
  write_text(prompt_file, task.prompt);
  constexpr int kTokens = 24;
  for (const std::string policy : {"", "lsa"}) {
    const std::filesystem::path kv = dir / ("kv" + policy);
    std::filesystem::create_directories(kv);
    std::string flags = " -n " + std::to_string(kTokens) + " -t 2";
    if (!policy.empty()) flags += " --policy lsa --indexer " + kNeedleIndexer + " --kv-store disk:" + kv.string();
    const RunResult run = run_flashmem("run -m " + kNeedleModel + " -f " + prompt_file.string() + flags);
    ASSERT_EQ(run.exit_code, 0) << run.err;
    ASSERT_FALSE(run.out.empty());
    const std::string expected = run.out.substr(0, run.out.size() - 1);  // run ends with a newline
    ServeConfig config;
    config.policy = policy;
    if (!policy.empty()) config.kv_dir = kv.string();
    auto server = start_server(config);
    const HttpReply r = post(server->port(), "/v1/completions", greedy_completion(task.prompt, kTokens));
    ASSERT_EQ(r.status, 200) << r.body;
    EXPECT_EQ(completion_text(r.json_body()), expected) << "policy '" << policy << "'";
    EXPECT_NE(expected.find(task.answers.at(0)), std::string::npos) << expected;
  }
  std::filesystem::remove_all(dir);
}

// Eight requests at once (prompts of different lengths, so prefill parts and decode tokens mix
// in the same steps) give each the text it gets alone.
TEST(ServerBatching, ConcurrentRequestsGiveTheirTextsAlone) {
  const std::filesystem::path kv = fresh_dir("serve_batch_kv");
  ServeConfig config;
  config.policy = "lsa";
  config.kv_dir = kv.string();
  config.max_sequences = 8;
  auto server = start_server(config);
  const int port = server->port();
  std::vector<json> bodies;
  for (int i = 0; i < 8; ++i) {
    json b = greedy_completion(task_prompt(needle_tokenizer(), 200 + 150 * i, 20 + i), 12 + i);
    if (i % 3 == 1) b["stream"] = true;
    bodies.push_back(b);
  }
  auto text_of = [&](const json& body) {
    const HttpReply r = post(port, "/v1/completions", body);
    EXPECT_EQ(r.status, 200) << r.body;
    return body.value("stream", false) ? streamed_text(parse_sse(r.body)) : completion_text(r.json_body());
  };
  std::vector<std::string> alone;
  for (const json& b : bodies) alone.push_back(text_of(b));
  std::vector<std::future<std::string>> together;
  for (const json& b : bodies) together.push_back(std::async(std::launch::async, text_of, b));
  for (size_t i = 0; i < bodies.size(); ++i) EXPECT_EQ(together[i].get(), alone[i]) << "request " << i;
  std::filesystem::remove_all(kv);
}

// A long streamed request in the only place: the next request is refused with 429 and
// Retry-After; when the first client leaves, its sequence is freed and requests run again.
TEST(ServerLimits, FullQueueGets429AndALeavingClientFreesItsPlace) {
  auto server = start_server(limited(1, 0));
  const int port = server->port();
  const json long_body = {{"prompt", "The road goes on"}, {"max_tokens", 8000}, {"temperature", 0}, {"stream", true}};
  RawConnection first(port, http_post_text("/v1/completions", long_body.dump()));
  ASSERT_NE(first.read_until("data: ").find("data: "), std::string::npos);  // it runs
  const HttpReply refused = post_text(port, "/v1/completions", R"({"prompt": "The road", "max_tokens": 2})");
  EXPECT_EQ(refused.status, 429) << refused.body;
  EXPECT_EQ(refused.json_body()["error"]["code"], "queue_full");
  ASSERT_NE(refused.headers.find("Retry-After"), refused.headers.end());
  first.close();
  EXPECT_TRUE(eventually([&] { return get(port, "/health").json_body()["active_sequences"] == 0; }));
  EXPECT_EQ(post_text(port, "/v1/completions", R"({"prompt": "The road", "max_tokens": 2})").status, 200);
}

// A client waiting for a non-streamed answer that leaves: its request is cancelled at once.
TEST(ServerLimits, LeavingNonStreamingClientIsCancelled) {
  auto server = start_server(limited(1, 1));
  const int port = server->port();
  const json long_body = {{"prompt", "The road goes on"}, {"max_tokens", 8000}, {"temperature", 0}};
  RawConnection first(port, http_post_text("/v1/completions", long_body.dump()));
  ASSERT_TRUE(eventually([&] { return get(port, "/health").json_body()["active_sequences"] == 1; }));
  first.close();
  EXPECT_TRUE(eventually([&] { return get(port, "/health").json_body()["active_sequences"] == 0; }, 10));
}

// The /metrics text parses as Prometheus exposition and its figures add up.
TEST(ServerMetrics, PrometheusTextParsesAndCounts) {
  const std::filesystem::path kv = fresh_dir("serve_metrics_kv");
  ServeConfig config;
  config.policy = "lsa";
  config.kv_dir = kv.string();
  config.budget = 0.1;  // a tenth of the pages resident: the rest is recalled from disk
  config.kv_budget_bytes = 64u << 20;
  auto server = start_server(config);
  const int port = server->port();
  // The 4000-token prompt's selection recalls pages that prefill did not leave resident.
  for (const int64_t length : {1500, 1500, 4000})
    ASSERT_EQ(post(port, "/v1/completions", greedy_completion(task_prompt(needle_tokenizer(), length, 1), 5)).status, 200);
  std::map<std::string, double> samples;  // "name{labels}" -> value
  std::map<std::string, std::string> types;
  const std::regex sample(R"(^([a-zA-Z_:][a-zA-Z0-9_:]*(\{[^}]*\})?) (\S+)$)");
  const std::regex type_line(R"(^# TYPE ([a-zA-Z_:][a-zA-Z0-9_:]*) (counter|gauge|histogram)$)");
  auto scrape = [&] {
    const HttpReply r = get(port, "/metrics");
    EXPECT_EQ(r.status, 200);
    EXPECT_NE(r.headers.find("Content-Type")->second.find("text/plain"), std::string::npos);
    samples.clear();
    std::istringstream lines(r.body);
    for (std::string line; std::getline(lines, line);) {
      std::smatch m;
      if (std::regex_match(line, m, type_line)) {
        types[m[1]] = m[2];
      } else if (line.rfind("# HELP ", 0) != 0) {
        EXPECT_TRUE(std::regex_match(line, m, sample)) << "not a sample line: " << line;
        samples[m[1]] = std::stod(m[3]);
      }
    }
  };
  // A request is counted once its response has gone out, which is after the client has it.
  const std::string completions_ok = "flashmem_requests_total{route=\"/v1/completions\",status=\"200\"}";
  EXPECT_TRUE(eventually([&] {
    scrape();
    return samples[completions_ok] == 3;
  }));
  EXPECT_EQ(types["flashmem_requests_total"], "counter");
  EXPECT_EQ(types["flashmem_time_to_first_token_seconds"], "histogram");
  EXPECT_EQ(samples["flashmem_completion_tokens_total"], 15);
  EXPECT_GT(samples["flashmem_prompt_tokens_total"], 3 * 1000);
  EXPECT_EQ(samples["flashmem_kv_budget_bytes"], 64u << 20);
  EXPECT_EQ(samples["flashmem_active_sequences"], 0);
  EXPECT_EQ(samples["flashmem_queue_length"], 0);
  EXPECT_GT(samples["flashmem_weights_bytes"], 1e6);  // needle-lm: 3 MB
  EXPECT_GT(samples["flashmem_process_resident_bytes"], 1e6);
  EXPECT_GT(samples["flashmem_recall_bytes_total"], 0);  // lsa recalls pages from the disk tier
  EXPECT_EQ(samples["flashmem_time_to_first_token_seconds_count"], 3);
  EXPECT_EQ(samples["flashmem_inter_token_seconds_count"], 3 * 4);
  // Buckets are cumulative: non-decreasing in their bound, +Inf equal to the count.
  for (const std::string h : {"flashmem_time_to_first_token_seconds", "flashmem_inter_token_seconds"}) {
    std::vector<std::pair<double, double>> buckets;  // (le, cumulative count)
    const std::string prefix = h + "_bucket{le=\"";
    for (const auto& [key, value] : samples)
      if (key.rfind(prefix, 0) == 0 && key.find("+Inf") == std::string::npos)
        buckets.emplace_back(std::stod(key.substr(prefix.size())), value);
    ASSERT_GE(buckets.size(), 5u) << h;
    std::sort(buckets.begin(), buckets.end());
    for (size_t i = 1; i < buckets.size(); ++i) EXPECT_GE(buckets[i].second, buckets[i - 1].second) << h;
    EXPECT_LE(buckets.back().second, samples[h + "_count"]);
    EXPECT_EQ(samples[h + "_bucket{le=\"+Inf\"}"], samples[h + "_count"]);
    EXPECT_GT(samples[h + "_sum"], 0);
  }
  std::filesystem::remove_all(kv);
}

// A request that no empty server's KV budget could hold is refused; smaller ones wait for room
// and all finish.
TEST(ServerLimits, KvBudgetAdmitsWhatFitsAndRefusesWhatNeverCan) {
  const std::shared_ptr<const Model> model = Model::load(kNeedleModel);
  const ModelConfig& c = model->config();
  // Contiguous caches reserve their whole capacity: a budget of 1.5 requests of 1000 tokens.
  const auto one = static_cast<uint64_t>(2 * c.n_layers * 1000 * c.kv_dim() * 2);
  ServeConfig config;
  config.kv_budget_bytes = one * 3 / 2;
  auto server = start_server(config);
  const int port = server->port();
  const HttpReply too_big = post(port, "/v1/completions", json{{"prompt", "The road"}, {"max_tokens", 2000}});
  EXPECT_EQ(too_big.status, 400) << too_big.body;
  EXPECT_EQ(too_big.json_body()["error"]["code"], "kv_budget_exceeded");
  const std::string prompt = task_prompt(needle_tokenizer(), 600, 4);
  std::vector<std::future<HttpReply>> replies;
  for (int i = 0; i < 3; ++i)
    replies.push_back(std::async(std::launch::async, [&] {
      return post(port, "/v1/completions", greedy_completion(prompt, 1000 - 610));
    }));
  for (auto& r : replies) EXPECT_EQ(r.get().status, 200);
}

}  // namespace
}  // namespace flashmem::test
