// `flashmem chat` and `flashmem chat-template` through the CLI: turns piped into chat with the
// bundled model (models/needle-lm.gguf, no chat template: the fallback) are answered, the second
// turn prefills only its new tokens on top of the KV the first left, /reset empties it; and a
// real model's template travels from tokenizer_config.json through `vocab-from-hf` into the
// GGUF and out of `chat-template`.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <regex>
#include <string>
#include <vector>

#include "../common/cli_run.h"
#include "../common/npm_models.h"

namespace flashmem::test {
namespace {

const std::string kModel = std::string(FLASHMEM_TEST_DATA) + "/../../models/needle-lm.gguf";

struct Turn {
  int reused = -1, prefilled = -1, generated = -1, context = -1;
  bool from_scratch = false;
};

// The --verbose lines "chat: turn N: reused R tokens, prefilled P new tokens..., generated G...;
// context C of CAP", in order.
std::vector<Turn> parse_turns(const std::string& err) {
  static const std::regex line(
      R"(chat: turn \d+: reused (\d+) tokens, prefilled (\d+) new tokens( \(history[^)]*\))?, generated (\d+)[^;]*; context (\d+) of)");
  std::vector<Turn> turns;
  for (auto it = std::sregex_iterator(err.begin(), err.end(), line); it != std::sregex_iterator(); ++it)
    turns.push_back({std::stoi((*it)[1]), std::stoi((*it)[2]), std::stoi((*it)[4]), std::stoi((*it)[5]),
                     (*it)[3].matched});
  return turns;
}

// Runs chat with `input` on stdin.
RunResult chat(const std::string& input, const std::string& flags = "") {
  const std::filesystem::path in = test_temp_path("chat_cli", "stdin.txt");
  std::ofstream(in) << input;
  RunResult r = run_flashmem("chat -m " + kModel + " -n 6 -t 2 --verbose " + flags + " < " + in.string(),
                             RunOptions{.timeout_seconds = 300});
  std::filesystem::remove(in);
  return r;
}

std::vector<std::string> lines(const std::string& text) {
  std::vector<std::string> out;
  size_t at = 0;
  while (at < text.size()) {
    const size_t end = std::min(text.find('\n', at), text.size());
    out.push_back(text.substr(at, end - at));
    at = end + 1;
  }
  return out;
}

TEST(ChatCli, SecondTurnPrefillsOnlyItsNewTokens) {
  ASSERT_TRUE(std::filesystem::exists(kModel)) << kModel;
  const std::string haystack =
      "The river runs past the old mill. One of the special magic numbers for teapot is: 9384956. "
      "Birds sing in the morning light. The bus comes at noon every day.";
  const RunResult r = chat(haystack + "\nQuestion: What is the special magic number for teapot?\n");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_NE(r.err.find("the fallback"), std::string::npos) << r.err;
  const std::vector<Turn> turns = parse_turns(r.err);
  ASSERT_EQ(turns.size(), 2u) << r.err;
  // Both turns are answered: a reply line each, with generated tokens.
  const std::vector<std::string> replies = lines(r.out);
  ASSERT_GE(replies.size(), 2u) << r.out;
  EXPECT_GT(turns[0].generated, 0);
  EXPECT_GT(turns[1].generated, 0);
  EXPECT_FALSE(replies.front().empty());
  // Turn 1 starts from an empty KV; turn 2 keeps all of it and prefills only what the template
  // adds after the first reply: the end of that turn, the new message, the generation prompt.
  EXPECT_EQ(turns[0].reused, 0);
  EXPECT_EQ(turns[0].context, turns[0].prefilled + turns[0].generated);
  EXPECT_FALSE(turns[1].from_scratch) << r.err;
  EXPECT_EQ(turns[1].reused, turns[0].context) << r.err;
  EXPECT_LT(turns[1].prefilled, turns[0].prefilled) << r.err;
  EXPECT_EQ(turns[1].context, turns[1].reused + turns[1].prefilled + turns[1].generated);
}

TEST(ChatCli, ResetEmptiesTheKv) {
  ASSERT_TRUE(std::filesystem::exists(kModel)) << kModel;
  const RunResult r = chat("hello there\n/reset\nhello there\n/quit\nnever read\n");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  const std::vector<Turn> turns = parse_turns(r.err);
  ASSERT_EQ(turns.size(), 2u) << r.err;  // /quit ends before the last line
  EXPECT_NE(r.err.find("conversation reset"), std::string::npos);
  EXPECT_EQ(turns[1].reused, 0);
  EXPECT_EQ(turns[1].prefilled, turns[0].prefilled);  // the same first turn again, greedy
  EXPECT_EQ(lines(r.out)[0], lines(r.out)[1]);
}

TEST(ChatCli, PagedPolicyKeepsTheKvAcrossTurns) {
  ASSERT_TRUE(std::filesystem::exists(kModel)) << kModel;
  const RunResult r = chat("hello there\nhow are you\n", "--policy full --page-tokens 16");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  const std::vector<Turn> turns = parse_turns(r.err);
  ASSERT_EQ(turns.size(), 2u) << r.err;
  EXPECT_EQ(turns[1].reused, turns[0].context);
}

// A message beyond the context is refused and the chat goes on; the exit status reports it.
TEST(ChatCli, MessageBeyondTheContextIsAnErrorAndTheChatGoesOn) {
  ASSERT_TRUE(std::filesystem::exists(kModel)) << kModel;
  const RunResult r = chat(std::string(2000, 'a') + "\nhi\n", "-c 64");
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_NE(r.err.find("error: the conversation needs"), std::string::npos) << r.err;
  EXPECT_NE(r.err.find("1 message(s) got no reply"), std::string::npos) << r.err;
  const std::vector<Turn> turns = parse_turns(r.err);
  ASSERT_EQ(turns.size(), 1u) << r.err;  // "hi" was answered
  EXPECT_EQ(turns[0].reused, 0);
}

TEST(ChatTemplateCli, FallbackRendering) {
  ASSERT_TRUE(std::filesystem::exists(kModel)) << kModel;
  const RunResult r = run_flashmem("chat-template -m " + kModel);
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(r.out, "system: You are a helpful assistant.\nuser: Hello!\nassistant:");
  EXPECT_NE(r.err.find("fallback"), std::string::npos);
}

TEST(ChatTemplateCli, BadTemplateFileNamesTheLine) {
  ASSERT_TRUE(std::filesystem::exists(kModel)) << kModel;
  const std::filesystem::path bad = test_temp_path("chat_cli", "bad.jinja");
  std::ofstream(bad) << "line one\n{% for m in messages %}{{ m.content }\n";
  const RunResult r = run_flashmem("chat-template -m " + kModel + " --template " + bad.string());
  std::filesystem::remove(bad);
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_NE(r.err.find("line 2, column"), std::string::npos) << r.err;
}

// Qwen3's template from its tokenizer_config.json, written by vocab-from-hf, read back.
TEST(ChatTemplateCli, VocabFromHfCarriesTheTemplate) {
  bool skip = false;
  const std::filesystem::path models = npm_models_dir("qwen3", skip);
  if (skip) GTEST_SKIP() << "node/npm is not installed: the npm tokenizer configs cannot be had";
  ASSERT_FALSE(models.empty());
  const std::filesystem::path gguf = test_temp_path("chat_cli", "qwen3.gguf");
  const std::filesystem::path messages = test_temp_path("chat_cli", "messages.json");
  const RunResult convert = run_flashmem("vocab-from-hf --tokenizer " + (models / "tokenizer.json").string() +
                                         " --config " + (models / "tokenizer_config.json").string() +
                                         " --pre qwen2 -o " + gguf.string());
  ASSERT_EQ(convert.exit_code, 0) << convert.err;
  std::ofstream(messages) << R"([{"role": "user", "content": "Hi"}])";
  const RunResult r = run_flashmem("chat-template -m " + gguf.string() + " --messages " + messages.string());
  std::filesystem::remove(gguf);
  std::filesystem::remove(messages);
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(r.out, "<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n");
  EXPECT_EQ(r.err.find("fallback"), std::string::npos) << r.err;
}

}  // namespace
}  // namespace flashmem::test
