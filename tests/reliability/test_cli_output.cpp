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

TEST(CliOutput, HelpAndVersionStillExitZero) {
  EXPECT_EQ(run_flashmem("--help").exit_code, 0);
  EXPECT_EQ(run_flashmem("run --help").exit_code, 0);
  EXPECT_EQ(run_flashmem("--version").exit_code, 0);
}

}  // namespace
}  // namespace flashmem
