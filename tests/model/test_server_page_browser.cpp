// The page at / in a real browser: headless Chromium (Debian `chromium`), driven over the
// DevTools protocol by tests/browser/page_dom.mjs (node built-ins only), loads
// /#message=...&max_tokens=N&temperature=0 from a server in this process (lsa over a disk slow
// tier at the serving default 13.5% budget); the page sends the message as if typed and streams
// the answer, and once its status reads "answered" the test reads the DOM: the answer must be
// the API's greedy answer to the same chat, and the conversation's memory figures the policy,
// resident KV below half the full history, and the pages recalled. Skipped only when chromium
// or node is not installed (`make deps` installs chromium).
#include <gtest/gtest.h>

#include <cstdlib>
#include <filesystem>
#include <regex>

#include "server/server_options.h"
#include "../common/cli_run.h"
#include "../common/serve_fixture.h"
#include "../common/serve_process.h"
#include "../common/temp_dir.h"

namespace flashmem::test {
namespace {

namespace fs = std::filesystem;

// Percent-encoding of a query value (RFC 3986 unreserved characters kept).
std::string url_encode(const std::string& text) {
  std::string out;
  for (const unsigned char c : text) {
    if (std::isalnum(c) || c == '-' || c == '_' || c == '.' || c == '~') {
      out += static_cast<char>(c);
    } else {
      out += fmt::format("%{:02X}", c);
    }
  }
  return out;
}

// HTML text with the entities Chromium's serializer writes decoded.
std::string decode_entities(std::string text) {
  for (const auto& [entity, ch] : {std::pair{"&lt;", "<"}, {"&gt;", ">"}, {"&quot;", "\""}, {"&#39;", "'"},
                                   {"&nbsp;", " "}, {"&amp;", "&"}}) {
    for (size_t at = 0; (at = text.find(entity, at)) != std::string::npos; at += std::string(ch).size())
      text.replace(at, std::string(entity).size(), ch);
  }
  return text;
}

// The text of the element with `id` in Chromium's serialized DOM.
std::string text_of_id(const std::string& html, const std::string& id) {
  std::smatch m;
  if (!std::regex_search(html, m, std::regex("id=\"" + id + "\"[^>]*>([^<]*)<"))) return "<missing #" + id + ">";
  return decode_entities(m[1]);
}

// "1.23 MiB" -> bytes (the page's mb()); -1 when not such a figure.
double mib_figure(const std::string& text) {
  std::smatch m;
  if (!std::regex_match(text, m, std::regex(R"(([0-9.]+) MiB)"))) return -1;
  return std::stod(m[1]) * 1048576;
}

TEST(ServerPageBrowser, ChatFromThePageShowsTheAnswerAndTheConversationsMemory) {
  if (!on_path("chromium")) GTEST_SKIP() << "chromium is not installed (Debian package `chromium`; `make deps`)";
  if (!on_path("node")) GTEST_SKIP() << "node is not installed: it drives the browser (tests/browser/page_dom.mjs)";
  const fs::path dir = fresh_dir("serve_page_browser");
  ServeConfig config;
  config.policy = "lsa";
  config.kv_dir = (dir / "kv").string();
  config.budget = server::kServeLsaBudget;
  fs::create_directories(config.kv_dir);
  auto server = start_server(config);
  const int port = server->port();

  const Tokenizer tokenizer = Tokenizer::from_gguf(Model::load(kNeedleModel)->file());
  const std::string message = task_prompt(tokenizer, 2048, 11);
  constexpr int kMaxTokens = 8;
  const HttpReply api = post(port, "/v1/chat/completions",
                             {{"messages", {{{"role", "user"}, {"content", message}}}},
                              {"max_tokens", kMaxTokens},
                              {"temperature", 0}});
  ASSERT_EQ(api.status, 200) << api.body;
  const std::string expected = completion_text(api.json_body());
  ASSERT_FALSE(expected.empty());

  const std::string url = fmt::format("http://127.0.0.1:{}/#message={}&max_tokens={}&temperature=0", port,
                                      url_encode(message), kMaxTokens);
  const fs::path dom = dir / "dom.html";
  const std::string command = "node " + (fs::path(FLASHMEM_TEST_DATA) / ".." / "browser" / "page_dom.mjs").string() +
                              " chromium '" + url + "' " + (dir / "profile").string() + " 240 > " + dom.string() +
                              " 2> " + (dir / "driver.log").string();
  ASSERT_EQ(std::system(command.c_str()), 0) << slurp(dir / "driver.log") << slurp(dom);
  const std::string html = slurp(dom);

  EXPECT_EQ(text_of_id(html, "status"), "answered") << html;
  std::smatch reply;
  ASSERT_TRUE(std::regex_search(html, reply, std::regex(R"(<div class="assistant">([^<]*)</div>)"))) << html;
  EXPECT_EQ(decode_entities(reply[1]), expected);

  EXPECT_EQ(text_of_id(html, "conv-policy"), "lsa");
  const double resident = mib_figure(text_of_id(html, "conv-resident"));
  const double history = mib_figure(text_of_id(html, "conv-history"));
  EXPECT_GT(resident, 0) << text_of_id(html, "conv-resident");
  EXPECT_GT(history, 0) << text_of_id(html, "conv-history");
  EXPECT_LT(resident, history / 2) << "lsa at 13.5% keeps far less than the history resident";
  std::smatch recalled;
  const std::string recalled_text = text_of_id(html, "conv-recalled");
  ASSERT_TRUE(std::regex_match(recalled_text, recalled, std::regex(R"((\d+) \(([0-9.]+ MiB)\))"))) << recalled_text;
  // The server's live figures came from /health and /metrics too.
  EXPECT_NE(text_of_id(html, "prompts").find("KV policy: lsa (resident fraction 0.135)"), std::string::npos)
      << text_of_id(html, "prompts");
  EXPECT_NE(html.find("KV history (full attention would keep)"), std::string::npos);
  server->stop();
  fs::remove_all(dir);
}

}  // namespace
}  // namespace flashmem::test
