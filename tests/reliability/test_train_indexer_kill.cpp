// train-indexer never replaces a good --out with an unvalidated indexer: killed (SIGKILL, the
// train-indexer process itself) before it has a trained, evaluated state that beats recency, it
// leaves the old file byte for byte; killed at any later point, the file is the old one or a
// complete indexer that loads; a finished run writes its indexer.
#include <gtest/gtest.h>

#include <chrono>
#include <filesystem>
#include <thread>

#include "../common/cli_run.h"
#include "../common/spawn.h"
#include "../common/synthetic_dump.h"
#include "indexer/indexer_model.h"
#include "util/error.h"

namespace flashmem {
namespace {

namespace fs = std::filesystem;

class TrainIndexerKill : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = test::test_temp_path("fm_kill", "dir");
    fs::remove_all(dir_);
    fs::create_directories(dir_ / "dumps");
    test::SyntheticDumpSpec spec;
    spec.n_tokens = 512;
    spec.label_from = 64;
    spec.hidden_dim = 64;
    spec.layers = {0, 1};
    for (int i = 0; i < 8; ++i)
      write_dump(fmt::format("{}/doc-{:06}.fmdump", (dir_ / "dumps").string(), i),
                 test::synthetic_dump(spec, 100 + static_cast<uint64_t>(i), fmt::format("synthetic#{}", i)));
    // The good file a user already has at --out.
    RandomIndexerSpec good;
    good.layers = {0, 1};
    good.hidden_dim = 64;
    good.q_lora_rank = 16;
    good.n_heads = 2;
    out_ = (dir_ / "good.gguf").string();
    write_indexer(out_, random_indexer_weights(good, 77));
    old_bytes_ = test::slurp(out_);
    ASSERT_FALSE(old_bytes_.empty());
  }
  void TearDown() override { fs::remove_all(dir_); }

  std::vector<std::string> args(int64_t samples) const {
    return {"train-indexer", "--data", (dir_ / "dumps").string(), "--out", out_, "--samples",
            std::to_string(samples), "--batch", "32", "--sink-tokens", "4", "--tail-tokens", "8",
            "--val-fraction", "0.25", "-t", "1"};
  }

  fs::path dir_;
  std::string out_, old_bytes_;
};

TEST_F(TrainIndexerKill, KilledAfterHalfASecondLeavesTheOldFileByteIdentical) {
  const pid_t pid = test::spawn_flashmem(args(2'000'000));
  ASSERT_GT(pid, 0);
  std::this_thread::sleep_for(std::chrono::milliseconds(500));
  ASSERT_EQ(::kill(pid, SIGKILL), 0);
  EXPECT_EQ(test::wait_exit(pid), 128 + SIGKILL);  // it was still running: the kill is what ended it
  EXPECT_EQ(test::slurp(out_), old_bytes_);
}

TEST_F(TrainIndexerKill, KilledAtAnyPointLeavesTheOldOrACompleteIndexer) {
  for (const int ms : {50, 200, 800, 1500, 3000}) {
    const pid_t pid = test::spawn_flashmem(args(20'000));
    ASSERT_GT(pid, 0);
    std::this_thread::sleep_for(std::chrono::milliseconds(ms));
    ::kill(pid, SIGKILL);
    test::wait_exit(pid);
    const std::string now = test::slurp(out_);
    if (now != old_bytes_) {
      EXPECT_NO_THROW(IndexerModel::load(out_)) << "killed after " << ms << " ms";
    }
  }
}

TEST_F(TrainIndexerKill, AFinishedRunWritesItsIndexer) {
  const pid_t pid = test::spawn_flashmem(args(64));
  ASSERT_EQ(test::wait_exit(pid), 0);
  const std::string now = test::slurp(out_);
  EXPECT_NE(now, old_bytes_);
  const IndexerModel m = IndexerModel::load(out_);
  EXPECT_EQ(m.config().hidden_dim, 64);
}

}  // namespace
}  // namespace flashmem
