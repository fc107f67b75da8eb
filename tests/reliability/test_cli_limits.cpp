// Numeric flags are checked against the model and the machine before any allocation
// (runtime/limits.h): a prompt beyond the trained context, a context beyond memory, absurd thread
// counts, and pages/sink/recent/tau flags far beyond the context are refused or cost no more
// than the context, with messages that name the numbers.
#include <gtest/gtest.h>

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <string>
#include <thread>

#include "../common/cli_run.h"

namespace flashmem {
namespace {

using test::run_flashmem;
using test::RunOptions;
using test::RunResult;

const std::string kModel = std::string(FLASHMEM_TEST_DATA) + "/models/stories260K.gguf";
constexpr int kTrainedContext = 512;  // stories260K's llama.context_length

// A bound on a run that must end in seconds: a runaway job fails the test instead of hanging it.
RunOptions within(int seconds) {
  RunOptions options;
  options.timeout_seconds = seconds;
  return options;
}

void expect_error(const RunResult& r, const std::string& text) {
  EXPECT_EQ(r.exit_code, 1) << r.err;
  EXPECT_EQ(r.err.rfind("error: ", 0), 0u) << r.err;
  EXPECT_NE(r.err.find(text), std::string::npos) << r.err;
  EXPECT_EQ(r.err.find("out of memory"), std::string::npos) << r.err;
}

class CliLimitsTest : public ::testing::Test {
 protected:
  void SetUp() override { std::filesystem::create_directories(dir_); }
  void TearDown() override { std::filesystem::remove_all(dir_); }

  // A prompt file of `repeats` sentences (about 10 tokens each).
  std::string prompt_file(int repeats) {
    const std::filesystem::path path = dir_ / "prompt.txt";
    std::FILE* f = std::fopen(path.c_str(), "wb");
    for (int i = 0; i < repeats; ++i) std::fputs("Once upon a time there was a little girl. ", f);
    std::fclose(f);
    return path.string();
  }

  const std::filesystem::path dir_ = test::test_temp_path("cli_limits", "dir");
};

TEST_F(CliLimitsTest, PromptBeyondTrainedContextIsRefusedBeforeWork) {
  // ~2,000 tokens: 4x the trained context (the 5 MB prompt of the report, in miniature).
  const RunResult r = run_flashmem("run -m " + kModel + " -f " + prompt_file(200) + " -n 5",
                                   within(60));
  expect_error(r, "trained context of " + std::to_string(kTrainedContext) + " tokens");
  EXPECT_NE(r.err.find("+ 5 tokens to generate"), std::string::npos) << r.err;
  EXPECT_EQ(r.out, "");
}

TEST_F(CliLimitsTest, HugeGenerationIsRefusedNamingTheNumbers) {
  expect_error(run_flashmem("run -m " + kModel + " -p hello -n 2147483647"), "2147483647 tokens to generate");
  expect_error(run_flashmem("run -m " + kModel + " -p hello -n 2147483647 --policy full"), "trained context");
}

TEST_F(CliLimitsTest, ExplicitContextTooSmallForPromptAndGeneration) {
  expect_error(run_flashmem("run -m " + kModel + " -p hello -n 50 -c 10"), "do not fit the context of 10 tokens");
}

TEST_F(CliLimitsTest, ZeroOrNegativeContextIsRefused) {
  expect_error(run_flashmem("run -m " + kModel + " -p hello -n 3 -c -5"), "must be >= 1 token, got -5");
  expect_error(run_flashmem("run -m " + kModel + " -p hello -n 3 -c 0"), "must be >= 1 token, got 0");
}

TEST_F(CliLimitsTest, ContextBeyondMemoryIsRefusedWithSizes) {
  // 2^31 tokens of stories260K's f16 KV: 1.4 TB.
  expect_error(run_flashmem("run -m " + kModel + " -p hello -n 3 -c 2147483647"), "more than this machine's");
  expect_error(run_flashmem("bench -m " + kModel + " --context 2147483647 --gen 1 --repeat 1"),
               "more than this machine's");
}

TEST_F(CliLimitsTest, ExplicitContextBeyondTrainedWarnsAboutRope) {
  const RunResult r = run_flashmem("run -m " + kModel + " -p hello -n 3 -t 1 -c 1024");
  EXPECT_EQ(r.exit_code, 0) << r.err;
  EXPECT_NE(r.err.find("warning: context of 1024 tokens exceeds the model's trained context of 512"),
            std::string::npos) << r.err;
  EXPECT_NE(r.err.find("RoPE unscaled"), std::string::npos) << r.err;
}

TEST_F(CliLimitsTest, EvalLengthBeyondTrainedContextIsRefused) {
  const RunResult r = run_flashmem("eval -m " + kModel + " --suite niah_single --lengths 100000 --policies full "
                                   "--samples 1 --out " + (dir_ / "eval").string(),
                                   within(60));
  expect_error(r, "--lengths: the prompt (100000 tokens)");
  EXPECT_NE(r.err.find("trained context of 512"), std::string::npos) << r.err;
}

TEST_F(CliLimitsTest, EvalTasksLengthBeyondTrainedContextIsRefused) {
  const RunResult r = run_flashmem("eval-tasks -m " + kModel + " --families niah_single --lengths 100000 --samples 1",
                                   within(60));
  expect_error(r, "trained context of 512 tokens");
}

TEST_F(CliLimitsTest, ThreadCountsOutsideOneToFourTimesTheCoresAreRefused) {
  const int most = 4 * static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
  for (const int t : {0, -1, most + 1, 10000}) {
    if (t == 10000 && t <= most) continue;  // a machine with 2,500+ threads
    SCOPED_TRACE(t);
    // within(): before, -t 10000 started 10,000 threads and ran for minutes.
    expect_error(run_flashmem("run -m " + kModel + " -p hello -n 3 -t " + std::to_string(t), within(30)),
                 "--threads must be in [1, " + std::to_string(most) + "]");
    expect_error(run_flashmem("bench -m " + kModel + " --context 8 --gen 1 -t " + std::to_string(t), within(30)),
                 "--threads");
  }
  EXPECT_EQ(run_flashmem("run -m " + kModel + " -p hello -n 3 -t " + std::to_string(most)).exit_code, 0);
}

TEST_F(CliLimitsTest, PageFlagsBeyondTheContextCostNoMoreThanIt) {
  // Before: the pool and its bookkeeping were sized by these flags (2.4 to 4.3 GB). Under a
  // 1 GiB address-space cap the run must succeed and print exactly what tau/sink/recent at the
  // context's own size print.
  RunOptions capped;
  capped.memory_limit_mb = 1024;
  const std::string base = "run -m " + kModel + " -p 'Once upon a time' -n 12 -t 1 --policy window";
  const RunResult huge = run_flashmem(
      base + " --page-tokens 4 --tau 2147483647 --recent-pages 100000000 --sink-pages 100000000", capped);
  const RunResult fit = run_flashmem(base + " --page-tokens 4 --tau 17 --recent-pages 5 --sink-pages 5", capped);
  ASSERT_EQ(huge.exit_code, 0) << huge.err;
  ASSERT_EQ(fit.exit_code, 0) << fit.err;
  EXPECT_EQ(huge.out, fit.out);
  const RunResult big_pages = run_flashmem(base + " --page-tokens 2147483647", capped);
  EXPECT_EQ(big_pages.exit_code, 0) << big_pages.err;
}

TEST_F(CliLimitsTest, LsaTopkZeroIsRefusedLikeNegative) {
  expect_error(run_flashmem("run -m " + kModel + " -p hello -n 3 --policy lsa --lsa-topk 0"), "--lsa-topk must be >= 1");
  expect_error(run_flashmem("run -m " + kModel + " -p hello -n 3 --policy lsa --lsa-topk -1"), "--lsa-topk must be >= 1");
}

TEST_F(CliLimitsTest, BudgetTokensIsCheckedWhileParsing) {
  const std::string run = "run -m " + kModel + " -p hello -n 3 ";
  expect_error(run_flashmem(run + "--policy recency:0.5 --budget-tokens 0"), "--budget-tokens must be >= 1");
  expect_error(run_flashmem(run + "--policy recency:0.5 --budget-tokens -64"), "--budget-tokens must be >= 1");
  expect_error(run_flashmem(run + "--policy recency:0.5 --budget-tokens many"), "--budget-tokens");
  expect_error(run_flashmem(run + "--policy recency:0.5 --budget-tokens 1.5"), "--budget-tokens");
  expect_error(run_flashmem(run + "--policy recency:0.5 --budget 0.1 --budget-tokens 256"),
               "--budget and --budget-tokens both cap the resident KV");
  expect_error(run_flashmem(run + "--budget-tokens 256"), "need a --policy");
  // Below sink + tail + open page it runs at that minimum, as a too-small --budget does.
  const RunResult ok = run_flashmem(run + "--policy recency:0.5 --budget-tokens 1 --page-tokens 16");
  EXPECT_EQ(ok.exit_code, 0) << ok.err;
}

TEST_F(CliLimitsTest, WeightsMemoryValuesAndWhatDoesNotFit) {
  const std::string run = "run -m " + kModel + " -p 'Once upon a time' -n 12 -t 1 ";
  expect_error(run_flashmem(run + "--weights-memory bogus"), "--weights-memory: 'bogus' is not one of map, huge");
  const RunResult mapped = run_flashmem(run + "--weights-memory map");
  const RunResult copied = run_flashmem(run + "--weights-memory huge");
  ASSERT_EQ(mapped.exit_code, 0) << mapped.err;
  ASSERT_EQ(copied.exit_code, 0) << copied.err;
  EXPECT_EQ(mapped.out, copied.out);
  // A (sparse) 1 TiB file: refused by its size before a byte is read or reserved, naming the way out.
  const std::string big = (dir_ / "big.gguf").string();
  std::ofstream(big).close();
  std::filesystem::resize_file(big, uint64_t{1} << 40);
  const RunResult r = run_flashmem("run -m " + big + " -p hello -n 1 --weights-memory huge", within(30));
  expect_error(r, "do not fit in the");
  EXPECT_NE(r.err.find("use --weights-memory map"), std::string::npos) << r.err;
}

}  // namespace
}  // namespace flashmem
