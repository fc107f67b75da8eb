// Conversation reuse in `flashmem serve` (issue 17): a follow-up turn whose prompt extends an
// earlier one attaches the kept prompt prefix from the disk tier and prefills only the rest
// (usage.prompt_tokens_details.cached_tokens), gives the greedy text of a cold server, survives a
// restart of the server, and stays within its disk quota.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>

#include "../common/serve_fixture.h"
#include "../common/temp_dir.h"
#include "tokenizer/tokenizer.h"

namespace flashmem::test {
namespace {

namespace fs = std::filesystem;

const Tokenizer& needle_tokenizer() {
  static const Tokenizer tokenizer = Tokenizer::from_gguf(Model::load(kNeedleModel)->file());
  return tokenizer;
}

json greedy(const std::string& prompt) {
  return {{"model", "needle-lm"}, {"prompt", prompt}, {"max_tokens", 8}, {"temperature", 0}};
}

ServeConfig reuse_config(const fs::path& kv_dir, uint64_t quota_bytes) {
  ServeConfig c;
  c.policy = "lsa";
  c.budget = 0.1;
  c.kv_dir = kv_dir.string();
  c.reuse_quota_bytes = quota_bytes;
  return c;
}

struct Turn {
  std::string text;
  int64_t prompt_tokens = 0, cached_tokens = 0;
};

Turn complete(int port, const std::string& prompt) {
  const HttpReply r = post(port, "/v1/completions", greedy(prompt));
  EXPECT_EQ(r.status, 200) << r.body;
  const json j = r.json_body();
  return {completion_text(j), j["usage"]["prompt_tokens"].get<int64_t>(),
          j["usage"]["prompt_tokens_details"]["cached_tokens"].get<int64_t>()};
}

int count_files(const fs::path& dir, const std::string& extension) {
  int n = 0;
  for (const auto& e : fs::directory_iterator(dir)) n += e.path().extension() == extension;
  return n;
}

class ServerReuse : public ::testing::Test {
 protected:
  fs::path dir_ = fresh_dir("server_reuse");
  // A needle task of ~1,300 tokens, then the follow-up turn: the first turn's prompt, its
  // answer and a new question.
  std::string first_ = data::generate_task({.length = 1300}, 5, needle_tokenizer()).prompt;
  static constexpr uint64_t kQuota = uint64_t{256} << 20;  // far more than a few entries need
};

TEST_F(ServerReuse, FollowUpTurnPrefillsOnlyNewTokensAndMatchesACold) {
  fs::create_directories(dir_ / "kv");
  fs::create_directories(dir_ / "cold");
  std::string second;
  Turn warm;
  {
    auto server = start_server(reuse_config(dir_ / "kv", kQuota));
    const Turn one = complete(server->port(), first_);
    EXPECT_EQ(one.cached_tokens, 0);
    second = first_ + one.text + " and then the value is";
    warm = complete(server->port(), second);
    // The kept prefix: the last 256-token boundary (the engine's max_batch) before the first
    // turn's prompt ends.
    EXPECT_EQ(warm.cached_tokens, (one.prompt_tokens - 1) / 256 * 256);
    EXPECT_GT(warm.cached_tokens, 1000);
    server->stop();
  }
  EXPECT_GE(count_files(dir_ / "kv", ".kvseq"), 1);
  {
    auto cold = start_server(reuse_config(dir_ / "cold", 0));
    const Turn c = complete(cold->port(), second);
    EXPECT_EQ(c.cached_tokens, 0);
    EXPECT_EQ(c.text, warm.text) << "a reused prefix must give the cold server's greedy text";
    cold->stop();
  }
  // A restart rebuilds the index from the directory: the same turn is served from the kept
  // prefix again, with the same text.
  auto restarted = start_server(reuse_config(dir_ / "kv", kQuota));
  const Turn again = complete(restarted->port(), second);
  EXPECT_EQ(again.cached_tokens, warm.cached_tokens);
  EXPECT_EQ(again.text, warm.text);
}

TEST_F(ServerReuse, DamagedEntriesAreDroppedAndQuotaEvicts) {
  fs::create_directories(dir_ / "kv");
  {
    auto server = start_server(reuse_config(dir_ / "kv", kQuota));
    complete(server->port(), first_);
    server->stop();
  }
  ASSERT_EQ(count_files(dir_ / "kv", ".kvseq"), 1);
  for (const auto& e : fs::directory_iterator(dir_ / "kv"))
    if (e.path().extension() == ".kvseq") fs::resize_file(e.path(), fs::file_size(e.path()) - 3);
  {
    // The damaged record is dropped at start; the turn is served cold and kept anew.
    auto server = start_server(reuse_config(dir_ / "kv", kQuota));
    EXPECT_EQ(complete(server->port(), first_ + " more").cached_tokens, 0);
    server->stop();
  }
  EXPECT_EQ(count_files(dir_ / "kv", ".kvpages"), count_files(dir_ / "kv", ".kvseq"))
      << "the damaged entry's pages went with its record";
  // A quota smaller than one entry keeps nothing.
  fs::remove_all(dir_ / "kv");
  fs::create_directories(dir_ / "kv");
  auto tiny = start_server(reuse_config(dir_ / "kv", 4096));
  complete(tiny->port(), first_);
  EXPECT_EQ(complete(tiny->port(), first_ + " more").cached_tokens, 0);
  EXPECT_EQ(count_files(dir_ / "kv", ".kvseq"), 0);
  EXPECT_EQ(count_files(dir_ / "kv", ".kvpages"), 0);
}

}  // namespace
}  // namespace flashmem::test
