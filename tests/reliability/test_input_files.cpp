// Input files are regular files or a clear error: a FIFO (no writer) as a model, token or prompt
// file is refused at once instead of blocking open() forever, and a directory as a prompt or
// text file is refused instead of reading as an empty prompt.
#include <gtest/gtest.h>
#include <sys/stat.h>

#include <filesystem>
#include <string>

#include "../common/cli_run.h"

namespace flashmem {
namespace {

using test::run_flashmem;
using test::RunOptions;
using test::RunResult;

const std::string kModel = std::string(FLASHMEM_TEST_DATA) + "/models/stories260K.gguf";
// Far above the milliseconds a refusal takes, far below a hung test run's patience.
constexpr int kTimeoutSeconds = 10;

class InputFilesTest : public ::testing::Test {
 protected:
  void SetUp() override {
    std::filesystem::create_directories(dir_);
    ASSERT_EQ(::mkfifo(fifo_.c_str(), 0600), 0) << fifo_;
  }
  void TearDown() override { std::filesystem::remove_all(dir_); }

  // The CLI with a bounded wait: a blocking open() shows as exit code 124, not as a hung test.
  static RunResult run(const std::string& args) {
    RunOptions options;
    options.timeout_seconds = kTimeoutSeconds;
    return run_flashmem(args, options);
  }

  const std::filesystem::path dir_ = test::test_temp_path("input_files", "dir");
  const std::filesystem::path fifo_ = dir_ / "fifo";
};

void expect_refused(const RunResult& r, const std::string& cause) {
  EXPECT_EQ(r.exit_code, 1) << r.err;
  EXPECT_EQ(r.err.rfind("error: ", 0), 0u) << r.err;
  EXPECT_NE(r.err.find(cause), std::string::npos) << r.err;
  EXPECT_NE(r.err.find("not a regular file"), std::string::npos) << r.err;
}

TEST_F(InputFilesTest, FifoAsModelIsRefusedWithoutBlocking) {
  expect_refused(run("inspect " + fifo_.string()), "is a FIFO");
  expect_refused(run("run -m " + fifo_.string() + " -p hello -n 1"), "is a FIFO");
}

TEST_F(InputFilesTest, FifoAsTokenFileIsRefusedWithoutBlocking) {
  const std::filesystem::path out = dir_ / "logits.f32";
  expect_refused(run("logits -m " + kModel + " --tokens " + fifo_.string() + " --out " + out.string()), "is a FIFO");
  EXPECT_FALSE(std::filesystem::exists(out));
}

TEST_F(InputFilesTest, FifoAsPromptFileIsRefusedWithoutBlocking) {
  expect_refused(run("run -m " + kModel + " -f " + fifo_.string() + " -n 1"), "prompt file '" + fifo_.string() + "' is a FIFO");
  expect_refused(run("tokenize -m " + kModel + " --file " + fifo_.string()), "is a FIFO");
}

TEST_F(InputFilesTest, DirectoryAsPromptFileIsRefused) {
  const RunResult r = run("run -m " + kModel + " -f " + dir_.string() + " -n 3");
  expect_refused(r, "prompt file '" + dir_.string() + "' is a directory");
  EXPECT_EQ(r.out, "");  // nothing generated from an "empty prompt"
  expect_refused(run("tokenize -m " + kModel + " --file " + dir_.string()), "is a directory");
}

TEST_F(InputFilesTest, DirectoryAsModelIsRefused) {
  expect_refused(run("inspect " + dir_.string()), "is a directory");
}

TEST_F(InputFilesTest, RegularPromptFileStillReads) {
  const std::filesystem::path prompt = dir_ / "prompt.txt";
  {
    std::FILE* f = std::fopen(prompt.c_str(), "wb");
    ASSERT_NE(f, nullptr);
    std::fputs("Once upon a time", f);
    std::fclose(f);
  }
  const RunResult file = run("run -m " + kModel + " -f " + prompt.string() + " -n 4 -t 1");
  const RunResult text = run("run -m " + kModel + " -p 'Once upon a time' -n 4 -t 1");
  ASSERT_EQ(file.exit_code, 0) << file.err;
  EXPECT_EQ(file.out, text.out);
}

}  // namespace
}  // namespace flashmem
