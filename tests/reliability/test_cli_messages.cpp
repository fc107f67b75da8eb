// Messages that make sense: a corpus line of binary bytes is reported escaped (no raw bytes on
// the terminal), and a dump whose documents are all already there says so instead of printing
// label statistics of nothing ("0.00 of 0.0").
#include <gtest/gtest.h>

#include <cstdio>
#include <filesystem>
#include <string>

#include "../common/cli_run.h"

namespace flashmem {
namespace {

using test::run_flashmem;
using test::RunResult;

const std::string kModel = std::string(FLASHMEM_TEST_DATA) + "/models/stories260K.gguf";

class CliMessagesTest : public ::testing::Test {
 protected:
  void SetUp() override { std::filesystem::create_directories(dir_); }
  void TearDown() override { std::filesystem::remove_all(dir_); }
  const std::filesystem::path dir_ = test::test_temp_path("cli_messages", "dir");
};

TEST_F(CliMessagesTest, CorpusParseErrorsEscapeRawBytes) {
  const std::filesystem::path corpus = dir_ / "bad.jsonl";
  {
    std::FILE* f = std::fopen(corpus.c_str(), "wb");
    ASSERT_NE(f, nullptr);
    std::fputs("{\"prompt\": \xff\xfe\x1b[2J}\n", f);  // invalid UTF-8, then a terminal escape
    std::fclose(f);
  }
  const RunResult r = run_flashmem("dump -m " + kModel + " --corpus " + corpus.string() + " --out " +
                                   (dir_ / "out").string() + " --layers 0 -t 1");
  EXPECT_EQ(r.exit_code, 1) << r.err;
  EXPECT_NE(r.err.find("line 1: invalid JSON"), std::string::npos) << r.err;
  EXPECT_NE(r.err.find("\\xff"), std::string::npos) << r.err;
  for (const char c : r.err) {
    const auto u = static_cast<unsigned char>(c);
    EXPECT_TRUE((u >= 0x20 && u < 0x7f) || c == '\n') << "raw byte " << static_cast<int>(u) << " in: " << r.err;
  }
}

TEST_F(CliMessagesTest, DumpWithEveryDocumentAlreadyThereSaysSo) {
  const std::string args = "dump -m " + kModel + " --corpus generate:1 --max-tokens 64 --label-from 8 --gen-tokens 40 "
                           "--layers 0 -t 1 --out " + (dir_ / "out").string();
  const RunResult first = run_flashmem(args);
  ASSERT_EQ(first.exit_code, 0) << first.err;
  EXPECT_NE(first.out.find("golden chunks per token"), std::string::npos) << first.out;
  const RunResult again = run_flashmem(args);
  ASSERT_EQ(again.exit_code, 0) << again.err;
  EXPECT_NE(again.out.find("already there 1"), std::string::npos) << again.out;
  EXPECT_NE(again.out.find("no tokens labeled in this run"), std::string::npos) << again.out;
  EXPECT_EQ(again.out.find("of 0.0"), std::string::npos) << again.out;
}

}  // namespace
}  // namespace flashmem
