// Output that cannot be written is an error: a command whose stdout fails (here /dev/full, as a
// full disk) ends with status 1 and an `error:` line, for buffered output written at exit and
// for streamed tokens. And every command-line parse error exits 1 with `error:`, as the README
// says, not with CLI11's own 100+ codes.
#include <gtest/gtest.h>

#include <filesystem>
#include <string>
#include <vector>

#include "../common/cli_run.h"

namespace flashmem {
namespace {

using test::run_flashmem;
using test::RunOptions;
using test::RunResult;

const std::string kModel = std::string(FLASHMEM_TEST_DATA) + "/models/stories260K.gguf";

RunResult run_to_full_disk(const std::string& args) {
  RunOptions options;
  options.stdout_path = "/dev/full";
  return run_flashmem(args, options);
}

void expect_write_error(const RunResult& r) {
  EXPECT_EQ(r.exit_code, 1) << r.err;
  EXPECT_EQ(r.err.rfind("error: ", 0), 0u) << r.err;
  EXPECT_NE(r.err.find("standard output"), std::string::npos) << r.err;
}

TEST(CliOutput, BufferedStdoutToFullDiskFails) {
  ASSERT_TRUE(std::filesystem::exists("/dev/full"));
  expect_write_error(run_to_full_disk("tokenize -m " + kModel + " --text 'Once upon a time'"));
  expect_write_error(run_to_full_disk("inspect " + kModel));
}

TEST(CliOutput, StreamedTokensToFullDiskFail) {
  expect_write_error(run_to_full_disk("run -m " + kModel + " -p hello -n 8 -t 1"));
}

TEST(CliOutput, SuccessfulOutputStillExitsZero) {
  const RunResult r = run_flashmem("tokenize -m " + kModel + " --text hello");
  EXPECT_EQ(r.exit_code, 0) << r.err;
  EXPECT_FALSE(r.out.empty());
}

TEST(CliOutput, ParseErrorsExitOneWithError) {
  const std::vector<std::string> cases = {"run --no-such-flag", "run -p hello", "no-such-command",
                                         "run -m " + kModel + " -p hello -n notanumber", ""};
  for (const std::string& args : cases) {
    SCOPED_TRACE(args);
    const RunResult r = run_flashmem(args);
    EXPECT_EQ(r.exit_code, 1) << r.err;
    EXPECT_EQ(r.err.rfind("error: ", 0), 0u) << r.err;
  }
}

TEST(CliOutput, FullDiskUnderTheKvStoreNamesItsPath) {
  const std::filesystem::path dir = test::test_temp_path("cli_output", "kv");
  std::filesystem::create_directories(dir);
  RunOptions options;
  // 64 KiB: the store's header and first 16-token page (40 KB for stories260K) fit, the second
  // does not (writes past the limit fail with EFBIG, as on a full disk).
  options.file_size_limit_bytes = 64 * 1024;
  const RunResult r = run_flashmem("run -m " + kModel + " -p 'Once upon a time there was a little girl named Lily. "
                                   "She liked to play outside in the park with her dog every day' -n 40 -t 1 "
                                   "--policy window --page-tokens 16 --kv-store disk:" + dir.string(),
                                   options);
  std::filesystem::remove_all(dir);
  EXPECT_EQ(r.exit_code, 1) << r.err;
  EXPECT_EQ(r.err.rfind("error: ", 0), 0u) << r.err;
  EXPECT_NE(r.err.find("disk:" + dir.string()), std::string::npos) << r.err;
}

TEST(CliOutput, HelpAndVersionStillExitZero) {
  EXPECT_EQ(run_flashmem("--help").exit_code, 0);
  EXPECT_EQ(run_flashmem("run --help").exit_code, 0);
  EXPECT_EQ(run_flashmem("--version").exit_code, 0);
}

}  // namespace
}  // namespace flashmem
