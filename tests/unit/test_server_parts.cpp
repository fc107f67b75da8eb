// The server's pieces without HTTP: text streaming with stop strings and UTF-8 hold-back,
// request parsing into typed structs (defaults, prompt forms, field errors), the API-key check,
// error objects and histogram exposition.
#include <gtest/gtest.h>

#include <random>

#include "server/api_error.h"
#include "server/auth.h"
#include "server/metrics.h"
#include "server/request.h"
#include "server/text_stream.h"

namespace flashmem::server {
namespace {

using nlohmann::json;

// Feeds `text` in pieces cut at seeded random places; returns what came out, and whether it
// stopped.
std::pair<std::string, bool> stream_in_pieces(const std::string& text, const std::vector<std::string>& stop,
                                              uint64_t seed) {
  TextStream stream(stop);
  std::mt19937_64 rng(seed);
  std::string out;
  size_t at = 0;
  while (at < text.size() && !stream.stopped()) {
    const size_t n = std::min<size_t>(text.size() - at, 1 + rng() % 4);
    out += stream.push(std::string_view(text).substr(at, n));
    at += n;
  }
  if (!stream.stopped()) out += stream.finish();
  return {out, stream.stopped()};
}

TEST(TextStream, CutsAtTheFirstStopStringHoweverTheTextIsSplit) {
  const std::string text = "alpha beta <END> gamma <STOP> delta";
  for (uint64_t seed = 0; seed < 50; ++seed) {
    EXPECT_EQ(stream_in_pieces(text, {"<STOP>", "<END>"}, seed), std::make_pair(std::string("alpha beta "), true));
    EXPECT_EQ(stream_in_pieces(text, {"<STOP>"}, seed), std::make_pair(std::string("alpha beta <END> gamma "), true));
    EXPECT_EQ(stream_in_pieces(text, {"absent"}, seed), std::make_pair(text, false));
    EXPECT_EQ(stream_in_pieces(text, {}, seed), std::make_pair(text, false));
  }
}

TEST(TextStream, HoldsBackWhatCouldStillBecomeAStopString) {
  TextStream stream({"</s>"});
  EXPECT_EQ(stream.push("one <"), "one ");
  EXPECT_EQ(stream.push("/"), "");
  EXPECT_EQ(stream.push("x"), "</x");  // not a stop string after all
  EXPECT_EQ(stream.push(" </"), " ");
  EXPECT_EQ(stream.push("s> two"), "");
  EXPECT_TRUE(stream.stopped());
  EXPECT_THROW(stream.push("more"), Error);
}

TEST(TextStream, HoldsBackIncompleteUtf8) {
  const std::string euro = "\xE2\x82\xAC";  // U+20AC, three bytes
  TextStream stream({});
  EXPECT_EQ(stream.push("a" + euro.substr(0, 1)), "a");
  EXPECT_EQ(stream.push(euro.substr(1, 1)), "");
  EXPECT_EQ(stream.push(euro.substr(2)), euro);
  EXPECT_EQ(stream.push("\xF0\x9F"), "");  // half of a four-byte character
  EXPECT_EQ(stream.finish(), "\xF0\x9F");   // the end hands out what is left
}

TEST(ServerRequest, CompletionDefaultsAreOpenAis) {
  const CompletionRequest r = parse_completion_request(json{{"prompt", "hi"}}, 77);
  EXPECT_EQ(std::get<std::string>(r.prompt), "hi");
  EXPECT_EQ(r.params.sampling.temperature, 1.0f);
  EXPECT_EQ(r.params.sampling.top_p, 1.0f);
  EXPECT_EQ(r.params.sampling.top_k, 0);
  EXPECT_EQ(r.params.sampling.min_p, 0.0f);
  EXPECT_EQ(r.params.sampling.seed, 77u);
  EXPECT_FALSE(r.params.max_tokens.has_value());
  EXPECT_FALSE(r.params.stream);
  EXPECT_FALSE(r.params.full_attention);
  EXPECT_FALSE(r.params.model.has_value());
}

TEST(ServerRequest, FieldsAreReadIntoTheirTypes) {
  const json body = {{"prompt", json::array({json::array({1, 2, 3})})},
                     {"model", "m"},
                     {"temperature", 0},
                     {"top_p", 0.5},
                     {"top_k", 7},
                     {"min_p", 0.1},
                     {"seed", -1},
                     {"max_tokens", 9},
                     {"stop", "x"},
                     {"n", 1},
                     {"stream", true},
                     {"stream_options", {{"include_usage", true}}},
                     {"policy", "full"},
                     {"logprobs", nullptr},
                     {"presence_penalty", 0},
                     {"unknown", {{"a", 1}}}};
  const CompletionRequest r = parse_completion_request(body, 0);
  EXPECT_EQ(std::get<std::vector<int32_t>>(r.prompt), (std::vector<int32_t>{1, 2, 3}));
  EXPECT_EQ(r.params.model, "m");
  EXPECT_EQ(r.params.sampling.temperature, 0.0f);
  EXPECT_EQ(r.params.sampling.top_p, 0.5f);
  EXPECT_EQ(r.params.sampling.top_k, 7);
  EXPECT_FLOAT_EQ(r.params.sampling.min_p, 0.1f);
  EXPECT_EQ(r.params.sampling.seed, UINT64_MAX);
  EXPECT_EQ(r.params.max_tokens, 9);
  EXPECT_EQ(r.params.stop, std::vector<std::string>{"x"});
  EXPECT_TRUE(r.params.stream);
  EXPECT_TRUE(r.params.include_usage);
  EXPECT_TRUE(r.params.full_attention);
}

TEST(ServerRequest, ChatPrefersMaxCompletionTokensAndJoinsTextParts) {
  const json body = {{"messages", json::array({{{"role", "user"},
                                                {"content", json::array({{{"type", "text"}, {"text", "a"}},
                                                                         {{"type", "text"}, {"text", "b"}}})}},
                                               {{"role", "assistant"}, {"content", nullptr}}})},
                     {"max_tokens", 5},
                     {"max_completion_tokens", 6}};
  const ChatRequest r = parse_chat_request(body, 0);
  ASSERT_EQ(r.messages.size(), 2u);
  EXPECT_EQ(r.messages[0].role, "user");
  EXPECT_EQ(r.messages[0].content, "ab");
  EXPECT_EQ(r.messages[1].content, "");
  EXPECT_EQ(r.params.max_tokens, 6);
}

TEST(ServerRequest, BadFieldsNameThemselves) {
  auto param_of = [](const std::string& text) {
    try {
      parse_completion_request(parse_json_body(text), 0);
    } catch (const ApiError& e) {
      EXPECT_EQ(e.status(), 400) << text;
      return e.param();
    }
    return std::string("accepted");
  };
  EXPECT_EQ(param_of("{"), "");
  EXPECT_EQ(param_of("3"), "");
  EXPECT_EQ(param_of(R"({"prompt": "x", "top_k": 1.5})"), "top_k");
  EXPECT_EQ(param_of(R"({"prompt": "x", "seed": 18446744073709551615})"), "seed");
  EXPECT_EQ(param_of(R"({"prompt": "x", "temperature": -0.1})"), "temperature");
  EXPECT_EQ(param_of(R"({"prompt": "x", "stop": ""})"), "stop");
  EXPECT_EQ(param_of(R"({"prompt": "x", "stream_options": true})"), "stream_options");
  EXPECT_EQ(param_of(R"({"prompt": "x", "best_of": 2})"), "best_of");
  EXPECT_EQ(param_of(R"({"prompt": "x", "response_format": {"type": "json_object"}})"), "response_format");
  EXPECT_EQ(param_of(R"({"prompt": [1, -2]})"), "prompt");
  EXPECT_EQ(param_of(R"({"prompt": []})"), "prompt");
  EXPECT_EQ(param_of(R"({"prompt": "x", "response_format": {"type": "text"}, "best_of": 1})"), "accepted");
}

TEST(ServerAuth, BearerMatchesOnlyTheWholeKey) {
  EXPECT_TRUE(bearer_matches("Bearer k3y", "k3y"));
  EXPECT_FALSE(bearer_matches("Bearer k3", "k3y"));
  EXPECT_FALSE(bearer_matches("Bearer k3yy", "k3y"));
  EXPECT_FALSE(bearer_matches("Bearer k3Y", "k3y"));
  EXPECT_FALSE(bearer_matches("k3y", "k3y"));
  EXPECT_FALSE(bearer_matches("bearer k3y", "k3y"));
  EXPECT_FALSE(bearer_matches("", "k3y"));
}

TEST(ServerErrors, ErrorObjectsHaveOpenAisFields) {
  const json j = ApiError(429, "rate_limit_exceeded", "busy", "", "queue_full").to_json();
  EXPECT_EQ(j, json::parse(R"({"error": {"message": "busy", "type": "rate_limit_exceeded", "param": null,
                                          "code": "queue_full"}})"));
}

TEST(ServerMetrics, HistogramBucketsAreCumulative) {
  Histogram h({0.1, 1});
  for (double v : {0.05, 0.1, 0.5, 2.0}) h.observe(v);
  std::string out;
  h.render(out, "t", "help");
  EXPECT_EQ(out,
            "# HELP t help\n# TYPE t histogram\n"
            "t_bucket{le=\"0.1\"} 2\nt_bucket{le=\"1\"} 3\nt_bucket{le=\"+Inf\"} 4\nt_sum 2.65\nt_count 4\n");
}

}  // namespace
}  // namespace flashmem::server
