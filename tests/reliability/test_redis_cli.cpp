// `flashmem run --kv-store redis://...` as a user runs it (issue 19): the same tokens as the RAM
// tier, nothing left on the server afterwards, and a clear error — never a crash or a wrong page —
// when the server is down at start or killed mid-run.
#include <gtest/gtest.h>
#include <sys/wait.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <thread>

#include "data/task.h"
#include "data/word_vocab.h"
#include "tokenizer/tokenizer.h"
#include "../common/cli_run.h"
#include "../common/redis_server.h"
#include "../common/spawn.h"

namespace flashmem {
namespace {

namespace fs = std::filesystem;
const std::string kModels = std::string(FLASHMEM_TEST_DATA) + "/../../models/";

// A needle task of `length` tokens for needle-lm, written to a file; returns its answer.
std::string write_task(const fs::path& file, int64_t length, uint64_t seed) {
  static const Tokenizer tokenizer{data::word_vocab_spec()};
  data::TaskSpec spec;
  spec.length = length;
  const data::TaskSample sample = data::generate_task(spec, seed, tokenizer);
  std::ofstream(file) << sample.prompt;
  return sample.answers.at(0);
}

std::string lsa_run(const fs::path& prompt, int n_predict) {
  return "run -m " + kModels + "needle-lm.gguf --indexer " + kModels + "needle-lm-indexer.gguf --policy lsa "
         "--budget 0.1 -t 1 -n " + std::to_string(n_predict) + " -f " + prompt.string();
}

int64_t keys_on(const test::RedisServer& server) {
  RedisConnection c(server.address(), std::chrono::milliseconds(2000));
  std::vector<RedisReply> replies;
  const RedisCommand dbsize = {"DBSIZE"};
  return c.pipeline(std::span(&dbsize, 1), &replies) ? replies[0].integer : -1;
}

TEST(RedisCli, LsaOnRedisGivesTheTokensOfLsaOnRamAt8K) {
  FLASHMEM_SKIP_WITHOUT_REDIS();
  test::RedisServer server;
  const fs::path prompt = test::test_temp_path("fm_redis", "prompt.txt");
  // 8K of needle-lm's 8,192-token context, leaving room for the answer.
  const std::string answer = write_task(prompt, 8192 - 64, 11);
  const test::RunResult ram = test::run_flashmem(lsa_run(prompt, 12) + " --kv-store ram");
  const test::RunResult redis = test::run_flashmem(lsa_run(prompt, 12) + " --kv-store " + server.url());
  fs::remove(prompt);
  ASSERT_EQ(0, ram.exit_code) << ram.err;
  ASSERT_EQ(0, redis.exit_code) << redis.err;
  EXPECT_EQ(ram.out, redis.out);
  EXPECT_NE(redis.out.find(answer), std::string::npos) << "answer " << answer << " not in: " << redis.out;
  EXPECT_EQ(0, keys_on(server));  // the sequence's pages went with it
}

TEST(RedisCli, ServerDownAtStartIsAClearError) {
  FLASHMEM_SKIP_WITHOUT_REDIS();
  const fs::path prompt = test::test_temp_path("fm_redis", "prompt.txt");
  write_task(prompt, 512, 1);
  const int port = test::free_loopback_port();
  const test::RunResult r = test::run_flashmem(lsa_run(prompt, 4) + " --kv-store redis://127.0.0.1:" + std::to_string(port));
  fs::remove(prompt);
  EXPECT_EQ(1, r.exit_code) << r.err;
  EXPECT_NE(r.err.find("error: cannot reach the Redis KV store at 127.0.0.1:" + std::to_string(port)),
            std::string::npos) << r.err;
  EXPECT_TRUE(r.out.empty()) << r.out;
}

TEST(RedisCli, ServerKilledMidRunEndsInAClearError) {
  FLASHMEM_SKIP_WITHOUT_REDIS();
  test::RedisServer server;
  const fs::path prompt = test::test_temp_path("fm_redis", "long_prompt.txt");
  write_task(prompt, 16384 - 128, 5);  // within -c 16384 with the 64 generated tokens
  const fs::path log = test::test_temp_path("fm_redis", "log.txt");
  const pid_t pid = test::spawn_flashmem({"run", "-m", kModels + "needle-lm.gguf", "--indexer",
                                          kModels + "needle-lm-indexer.gguf", "--policy", "lsa", "--budget", "0.1",
                                          "-t", "1", "-n", "64", "-c", "16384", "-f", prompt.string(),
                                          "--kv-store", server.url()},
                                         log.string());
  // Kill the server once the run has written some pages (mid-prefill on this prompt).
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(60);
  while (keys_on(server) < 4 && std::chrono::steady_clock::now() < deadline)
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  server.kill();
  const int code = test::wait_exit(pid);
  const std::string err = test::slurp(log);
  fs::remove(prompt);
  fs::remove(log);
  EXPECT_EQ(1, code) << err;  // an error exit, not a signal (128 + n) and not a success
  EXPECT_NE(err.find("error: "), std::string::npos) << err;
  EXPECT_NE(err.find("KV"), std::string::npos) << err;
}

}  // namespace
}  // namespace flashmem
