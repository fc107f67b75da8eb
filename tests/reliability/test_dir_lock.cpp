// One writer per output directory or file: DirLock on its own, and every command that writes a
// directory or a training output stops with "another flashmem process (pid N) is writing ..."
// while another process holds it — before it has written anything.
#include <gtest/gtest.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <thread>

#include "../common/cli_run.h"
#include "../common/spawn.h"
#include "util/dir_lock.h"
#include "util/error.h"

namespace flashmem {
namespace {

namespace fs = std::filesystem;

const std::string kModel = std::string(FLASHMEM_TEST_DATA) + "/models/stories260K.gguf";

class DirLockTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = test::test_temp_path("fm_lock", "dir");
    fs::remove_all(dir_);
    fs::create_directories(dir_);
  }
  void TearDown() override { fs::remove_all(dir_); }
  std::string held_message() const { return fmt::format("another flashmem process (pid {}) is writing", ::getpid()); }
  fs::path dir_;
};

TEST_F(DirLockTest, SecondLockFailsUntilTheFirstIsReleased) {
  {
    const DirLock first = DirLock::lock_directory(dir_.string());
    try {
      DirLock::lock_directory(dir_.string());
      ADD_FAILURE() << "locked twice";
    } catch (const Error& e) {
      EXPECT_NE(std::string(e.what()).find(held_message() + " " + dir_.string()), std::string::npos) << e.what();
    }
    // A file lock is its own: another output in the same directory is free.
    EXPECT_NO_THROW(DirLock::lock_file((dir_ / "a.gguf").string()));
  }
  EXPECT_NO_THROW(DirLock::lock_directory(dir_.string()));  // released with its owner
  const std::string file = (dir_ / "m.gguf").string();
  const DirLock f = DirLock::lock_file(file);
  EXPECT_THROW(DirLock::lock_file(file), Error);
  DirLock moved = DirLock::lock_directory(dir_.string());
  DirLock target = std::move(moved);
  EXPECT_THROW(DirLock::lock_directory(dir_.string()), Error);  // the move kept the lock
}

TEST_F(DirLockTest, EveryWritingCommandRefusesALockedOutput) {
  const std::string out = (dir_ / "out").string();
  fs::create_directories(out);
  const std::string indexer = (dir_ / "i.gguf").string(), lm = (dir_ / "m.gguf").string();
  const DirLock held_dir = DirLock::lock_directory(out);
  const DirLock held_indexer = DirLock::lock_file(indexer);
  const DirLock held_lm = DirLock::lock_file(lm);
  const struct {
    std::string args, what;
  } cases[] = {
      {"eval -m " + kModel + " --lengths 384 --policies full --samples 1 --out " + out, out},
      {"dump -m " + kModel + " --corpus generate:1 --layers 0 --max-tokens 32 --out " + out, out},
      {"train-indexer --data " + out + " --out " + indexer, indexer},
      {"train-lm --out " + lm + " --steps 1", lm},
  };
  for (const auto& c : cases) {
    const test::RunResult r = test::run_flashmem(c.args);
    EXPECT_EQ(r.exit_code, 1) << c.args;
    EXPECT_NE(r.err.find("error: " + held_message() + " " + c.what), std::string::npos) << c.args << "\n" << r.err;
  }
  EXPECT_FALSE(fs::exists(fs::path(out) / "results.json"));
  EXPECT_FALSE(fs::exists(indexer));
  EXPECT_FALSE(fs::exists(lm));
}

TEST_F(DirLockTest, TwoEvalsIntoOneDirectory) {
  // The incident: two grids into one --out at once. The second stops at once; the first, on its
  // own, keeps every cell.
  const std::string out = (dir_ / "grid").string();
  const pid_t first = test::spawn_flashmem({"eval", "-m", kModel, "--lengths", "384", "--policies", "full,window,recency",
                                            "--budgets", "0.25", "--samples", "2", "-t", "1", "--out", out});
  ASSERT_GT(first, 0);
  // Wait (bounded) until the first holds the lock, then start the second grid.
  const fs::path lock_file = fs::path(out) / ".flashmem.lock";
  for (int i = 0; i < 200 && test::slurp(lock_file).empty(); ++i) std::this_thread::sleep_for(std::chrono::milliseconds(20));
  const test::RunResult second = test::run_flashmem("eval -m " + kModel + " --lengths 384 --policies full,random "
                                                    "--budgets 0.1 --samples 2 -t 1 --out " + out);
  const int first_exit = test::wait_exit(first);
  ASSERT_EQ(first_exit, 0);
  if (second.exit_code == 0) GTEST_SKIP() << "the first eval finished before the second started";
  EXPECT_NE(second.err.find(fmt::format("another flashmem process (pid {}) is writing", first)), std::string::npos)
      << second.err;
  const std::string results = test::slurp(fs::path(out) / "results.json");
  EXPECT_NE(results.find("\"recency\""), std::string::npos);
}

}  // namespace
}  // namespace flashmem
