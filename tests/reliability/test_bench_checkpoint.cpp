// `flashmem bench --checkpoint ID`: a long prefill persisted in the slow tier as it goes and
// resumed by the next run, which then decodes exactly what an uninterrupted run decodes.
#include <gtest/gtest.h>

#include <string>
#include <utility>

#include "../common/cli_run.h"
#include "../common/json_line.h"
#include "../common/temp_dir.h"

namespace flashmem::test {
namespace {

const std::string kModel = std::string(FLASHMEM_TEST_DATA) + "/../../models/needle-lm.gguf";

// 3000 tokens arrive in parts of 2048 (8 chunks of 256): with a checkpoint every 1024 tokens
// the first part's end (2048) is a checkpoint, the last part (952 tokens) never is.
std::string bench_args(const std::string& store, const std::string& extra) {
  return "bench -m " + kModel + " --context 3000 --gen 16 -t 2 --policy full --kv-store disk:" +
         store + " --json " + extra;
}

TEST(BenchCheckpoint, ResumedPrefillDecodesWhatAnUninterruptedOneDoes) {
  const auto plain_dir = fresh_dir("plain"), dir = fresh_dir("store");
  const RunResult plain = run_flashmem(bench_args(plain_dir.string(), "--repeat 1"));
  ASSERT_EQ(plain.exit_code, 0) << plain.err;
  const RunResult first = run_flashmem(bench_args(dir.string(), "--repeat 1 --checkpoint long1 --checkpoint-every 1024"));
  ASSERT_EQ(first.exit_code, 0) << first.err;
  const RunResult second = run_flashmem(bench_args(dir.string(), "--repeat 1 --checkpoint long1 --checkpoint-every 1024"));
  ASSERT_EQ(second.exit_code, 0) << second.err;

  const nlohmann::json p = last_json_line(plain.out), a = last_json_line(first.out), b = last_json_line(second.out);
  EXPECT_FALSE(p.contains("checkpoint"));
  EXPECT_EQ(a["prefill_resumed_from"], 0);
  EXPECT_EQ(a["checkpoints_written"], 1);
  EXPECT_EQ(b["prefill_resumed_from"], 2048) << "the second run resumes at the first run's checkpoint";
  EXPECT_EQ(b["checkpoints_written"], 0) << "nothing left to checkpoint before the last part";
  EXPECT_EQ(a["decoded_digest"], p["decoded_digest"]);
  EXPECT_EQ(b["decoded_digest"], p["decoded_digest"]) << "the resumed history decodes the same tokens";
  EXPECT_NE(second.out.find("checkpoint 'long1': resumed at 2048 tokens"), std::string::npos) << second.out;
  std::filesystem::remove_all(plain_dir);
  std::filesystem::remove_all(dir);
}

TEST(BenchCheckpoint, AnotherPromptOrSettingIsRefusedAndTheEntryKept) {
  const auto dir = fresh_dir("store");
  ASSERT_EQ(run_flashmem(bench_args(dir.string(), "--repeat 1 --checkpoint c --checkpoint-every 1024")).exit_code, 0);
  const RunResult seed = run_flashmem(bench_args(dir.string(), "--repeat 1 --checkpoint c --checkpoint-every 1024 --seed 2"));
  EXPECT_EQ(seed.exit_code, 1);
  EXPECT_NE(seed.err.find("checkpoint 'c' holds another prompt"), std::string::npos) << seed.err;
  const RunResult kv = run_flashmem(bench_args(dir.string(), "--repeat 1 --checkpoint c --kv-type q8_0"));
  EXPECT_EQ(kv.exit_code, 1);
  EXPECT_NE(kv.err.find("error: "), std::string::npos) << kv.err;
  // The refusals changed nothing: the entry still resumes.
  const RunResult again = run_flashmem(bench_args(dir.string(), "--repeat 1 --checkpoint c --checkpoint-every 1024"));
  ASSERT_EQ(again.exit_code, 0) << again.err;
  EXPECT_EQ(last_json_line(again.out)["prefill_resumed_from"], 2048);
  std::filesystem::remove_all(dir);
}

TEST(BenchCheckpoint, UnusableCombinationsAreRefusedBeforeLoading) {
  const auto dir = fresh_dir("store");
  const std::pair<std::string, std::string> cases[] = {
      {"--repeat 1 --checkpoint c --fill random", "not with --fill random"},
      {"--repeat 2 --checkpoint c", "use --repeat 1"},
      {"--repeat 1 --checkpoint c --checkpoint-every 0", "--checkpoint-every must be >= 1"},
      {"--repeat 1 --checkpoint c --sequences 2", "not with --sequences"}};
  for (const auto& [extra, message] : cases) {
    const RunResult r = run_flashmem(bench_args(dir.string(), extra));
    EXPECT_EQ(r.exit_code, 1) << extra;
    EXPECT_NE(r.err.find(message), std::string::npos) << extra << ": " << r.err;
  }
  const RunResult no_policy = run_flashmem("bench -m " + kModel + " --context 300 --checkpoint c");
  EXPECT_EQ(no_policy.exit_code, 1);
  EXPECT_NE(no_policy.err.find("needs a --policy"), std::string::npos) << no_policy.err;
  const RunResult ram = run_flashmem("bench -m " + kModel + " --context 300 --repeat 1 --policy full --checkpoint c");
  EXPECT_EQ(ram.exit_code, 1);
  EXPECT_NE(ram.err.find("error: "), std::string::npos) << ram.err;
  std::filesystem::remove_all(dir);
}

}  // namespace
}  // namespace flashmem::test
