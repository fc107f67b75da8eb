// A real client against the real binary: `flashmem serve` started as a child process on a free
// loopback port (lsa over the default disk slow tier, an API key), driven by the official
// `openai` npm package through tests/npm/openai_client.mjs: the model list, a completion equal to
// `flashmem run`'s greedy text, a chat completion and its streamed twin with usage, a refused
// request; then SIGTERM, after which the server exits 0 and leaves no KV file behind. Skipped
// only when node is not installed.
#include <gtest/gtest.h>
#include <signal.h>

#include <cstdlib>
#include <filesystem>

#include <nlohmann/json.hpp>

#include "../common/cli_run.h"
#include "../common/serve_process.h"
#include "../common/spawn.h"
#include "../common/temp_dir.h"

namespace flashmem::test {
namespace {

namespace fs = std::filesystem;
using nlohmann::json;

const std::string kModels = std::string(FLASHMEM_TEST_DATA) + "/../../models/";
const fs::path kNpmDir = fs::path(FLASHMEM_TEST_DATA) / ".." / "npm";

TEST(ServerOpenAiNpm, OfficialClientTalksToFlashmemServe) {
  if (!on_path("node")) GTEST_SKIP() << "node is not installed";
  ASSERT_TRUE(fs::exists(kNpmDir / "node_modules" / "openai" / "package.json"))
      << "the openai package is missing: run `make test` or `npm ci --prefix tests/npm`";
  const fs::path dir = fresh_dir("serve_npm");
  const fs::path prompt = dir / "prompt.txt";
  const RunResult task = run_flashmem("gen-task --family niah_single --length 1024 --seed 9 -m " + kModels +
                                      "needle-lm.gguf --out " + prompt.string());
  ASSERT_EQ(task.exit_code, 0) << task.err;
  const std::string answer = task.out.substr(0, task.out.find('\n'));
  constexpr int kTokens = 10;
  const RunResult run = run_flashmem("run -m " + kModels + "needle-lm.gguf -f " + prompt.string() + " -n " +
                                     std::to_string(kTokens) + " -t 2");
  ASSERT_EQ(run.exit_code, 0) << run.err;
  const std::string expected = run.out.substr(0, run.out.size() - 1);  // run ends with a newline

  const fs::path log = dir / "serve.log";
  const fs::path state = dir / "state";
  const pid_t pid = spawn_flashmem({"serve", "-m", kModels + "needle-lm.gguf", "--port", "0", "-t", "2",
                                    "--api-key", "test-key-1", "--state-dir", state.string(), "--policy", "lsa",
                                    // lsa's threshold-only selection: serve's default 13.5% of a 1K
                                    // prompt's 16 pages is all sink and tail, so the needle's page
                                    // could not stay and the text would not be run's.
                                    "--budget", "1", "--indexer", kModels + "needle-lm-indexer.gguf",
                                    // No conversation reuse: the streamed chat repeats the first chat's
                                    // prompt and must report the same usage; reuse has its own tests
                                    // (test_server_reuse), and the KV dir must end empty.
                                    "--reuse-quota-mb", "0"},
                                   log.string());
  const int port = announced_port(log, 60);
  ASSERT_GT(port, 0) << slurp(log);
  const fs::path out = dir / "client.json";
  const std::string command = "timeout 300 node " + (kNpmDir / "openai_client.mjs").string() +
                              " http://127.0.0.1:" + std::to_string(port) + "/v1 test-key-1 " + prompt.string() +
                              " " + std::to_string(kTokens) + " > " + out.string() + " 2>&1";
  const int status = std::system(command.c_str());
  const std::string client_out = slurp(out);
  ::kill(pid, SIGTERM);
  EXPECT_EQ(wait_exit(pid), 0) << slurp(log);
  ASSERT_EQ(status, 0) << client_out;
  const json r = json::parse(client_out, nullptr, false);
  ASSERT_FALSE(r.is_discarded()) << client_out;

  EXPECT_EQ(r["models"], json::array({"needle-lm"}));
  EXPECT_EQ(r["completion"], expected);
  EXPECT_NE(expected.find(answer), std::string::npos) << expected;
  EXPECT_EQ(r["completion_finish"], "length");
  EXPECT_EQ(r["completion_usage"]["completion_tokens"], kTokens);
  EXPECT_EQ(r["chat_role"], "assistant");
  EXPECT_EQ(r["chat_usage"]["completion_tokens"], kTokens);
  EXPECT_EQ(r["chat_stream"], r["chat"]);
  EXPECT_GE(r["chat_stream_chunks"], 3);
  EXPECT_EQ(r["chat_stream_usage"], r["chat_usage"]);
  EXPECT_EQ(r["refused"]["status"], 400);
  EXPECT_EQ(r["refused"]["param"], "max_tokens");
  // The disk slow tier's files went with their sequences.
  ASSERT_TRUE(fs::is_directory(state / "kv"));
  EXPECT_TRUE(names_in(state / "kv").empty());
  fs::remove_all(dir);
}

}  // namespace
}  // namespace flashmem::test
