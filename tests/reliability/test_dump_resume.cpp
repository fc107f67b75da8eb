// `flashmem dump` resumes only what it would write again: every input that changes a document's
// dump (seed, corpus content, model, layers, top-p, ...) is part of its resume key. A dump made
// from other inputs is a clear error naming the input (not skipped, not silently overwritten); a
// dump that does not read back is dumped again.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>

#include "../common/cli_run.h"
#include "train/dump_format.h"

namespace flashmem {
namespace {

namespace fs = std::filesystem;

class DumpResume : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = test::test_temp_path("fm_dump_resume", "dir");
    fs::remove_all(dir_);
    fs::create_directories(dir_);
    model_ = (dir_ / "model.gguf").string();
    const test::RunResult r = test::run_flashmem(
        "dev make-random-model --dim 32 --layers 2 --heads 2 --kv-heads 1 --ff 64 --vocab 300 --context 128 --seed 5 "
        "--out " + model_);
    ASSERT_EQ(r.exit_code, 0) << r.err;
  }
  void TearDown() override { fs::remove_all(dir_); }

  test::RunResult dump(const std::string& corpus, const std::string& out, const std::string& extra = "") {
    return test::run_flashmem("dump -m " + model_ + " --corpus " + corpus + " --out " + out +
                              " --layers 0,1 --max-tokens 48 --label-from 16 -t 1 " + extra);
  }
  // Teacher-forced JSONL on the random qwen2 fixture (a real tokenizer).
  test::RunResult dump_jsonl(const std::string& corpus, const std::string& out) {
    return test::run_flashmem("dump -m " + std::string(FLASHMEM_TEST_DATA) + "/models/rand-qwen2-f32.gguf --corpus " +
                              corpus + " --out " + out + " --layers 0,2 --max-tokens 128 --label-from 4 -t 1");
  }

  fs::path dir_;
  std::string model_;
};

TEST_F(DumpResume, AnotherSeedIsAnErrorNotAResume) {
  const std::string out = (dir_ / "D").string();
  test::RunResult r = dump("generate:4", out, "--seed 99");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_NE(r.out.find("written 4, already there 0"), std::string::npos) << r.out;
  const std::string before = test::slurp(out + "/doc-000000.fmdump");
  // The same inputs: all four are resumed.
  r = dump("generate:4", out, "--seed 99");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_NE(r.out.find("written 0, already there 4"), std::string::npos) << r.out;
  // Without --seed (seed 0): the dumps there were made with seed 99.
  r = dump("generate:4", out);
  EXPECT_NE(r.exit_code, 0);
  EXPECT_NE(r.err.find("error:"), std::string::npos) << r.err;
  EXPECT_NE(r.err.find("seed"), std::string::npos) << r.err;
  EXPECT_NE(r.err.find("99"), std::string::npos) << r.err;
  EXPECT_EQ(r.out.find("already there"), std::string::npos) << r.out;
  EXPECT_EQ(test::slurp(out + "/doc-000000.fmdump"), before);  // nothing lost either
  // Other label settings and another model are inputs too.
  r = dump("generate:4", out, "--seed 99 --top-p 0.7");
  EXPECT_NE(r.exit_code, 0);
  EXPECT_NE(r.err.find("top_p"), std::string::npos) << r.err;
  const std::string other_model = (dir_ / "other.gguf").string();
  ASSERT_EQ(test::run_flashmem("dev make-random-model --dim 32 --layers 2 --heads 2 --kv-heads 1 --ff 64 --vocab 300 "
                               "--context 128 --seed 6 --out " + other_model).exit_code, 0);
  r = test::run_flashmem("dump -m " + other_model + " --corpus generate:4 --out " + out +
                         " --layers 0,1 --max-tokens 48 --label-from 16 -t 1 --seed 99");
  EXPECT_NE(r.exit_code, 0);
  EXPECT_NE(r.err.find("backbone"), std::string::npos) << r.err;
}

TEST_F(DumpResume, AJsonlEditedInPlaceIsNotSkipped) {
  const std::string corpus = (dir_ / "corpus.jsonl").string(), out = (dir_ / "J").string();
  auto write_corpus = [&](const std::string& first) {
    std::ofstream f(corpus);
    f << R"({"prompt": "hello there", "continuation": ")" << first << "\"}\n";
    f << R"({"prompt": "second one", "continuation": "a b c d e f g h i j k l m n o p q r s t u v w x y z"})" << "\n";
  };
  write_corpus("one two three four five six seven eight nine ten eleven twelve thirteen fourteen");
  test::RunResult r = dump_jsonl(corpus, out);
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_NE(r.out.find("written 2"), std::string::npos) << r.out;
  // Line 1 edited in place: same file name, same id corpus.jsonl#1, other text.
  write_corpus("eins zwei drei vier fuenf sechs sieben acht neun zehn elf zwoelf dreizehn vierzehn");
  r = dump_jsonl(corpus, out);
  EXPECT_NE(r.exit_code, 0);
  EXPECT_NE(r.err.find("doc-000000"), std::string::npos) << r.err;
  EXPECT_NE(r.err.find("tokens_sha256"), std::string::npos) << r.err;
  // Into a fresh directory the edited corpus dumps fine.
  r = dump_jsonl(corpus, (dir_ / "J2").string());
  EXPECT_EQ(r.exit_code, 0) << r.err;
}

TEST_F(DumpResume, ADumpOfAnotherRunBeyondTheCorpusIsAnError) {
  const std::string out = (dir_ / "E").string();
  ASSERT_EQ(dump("generate:3", out, "--seed 1").exit_code, 0);
  // Fewer documents, other seed: doc-000002 is not ours, and training would read it beside ours.
  const test::RunResult r = dump("generate:2", out, "--seed 2");
  EXPECT_NE(r.exit_code, 0);
  EXPECT_NE(r.err.find("seed"), std::string::npos) << r.err;
}

TEST_F(DumpResume, ADamagedDumpIsDumpedAgain) {
  const std::string out = (dir_ / "C").string();
  ASSERT_EQ(dump("generate:2", out).exit_code, 0);
  const std::string path = out + "/doc-000001.fmdump";
  const std::string good = test::slurp(path);
  std::string bad = good;
  bad[bad.size() / 2] ^= 0x04;
  {
    std::ofstream f(path, std::ios::binary);
    f.write(bad.data(), static_cast<std::streamsize>(bad.size()));
  }
  const test::RunResult r = dump("generate:2", out);
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_NE(r.err.find("does not read back"), std::string::npos) << r.err;
  EXPECT_NE(r.out.find("written 1, already there 1"), std::string::npos) << r.out;
  EXPECT_EQ(test::slurp(path), good);  // deterministic: the same bytes again
  EXPECT_NO_THROW(read_dump(path));
}

}  // namespace
}  // namespace flashmem
