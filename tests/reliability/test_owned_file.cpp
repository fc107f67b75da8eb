// Files flashmem creates (util/owned_file.h) and their two users, DiskStore and write_file_atomic:
// an existing file or a planted symlink is never opened, a directory gets an unpredictable name,
// SIGTERM removes what the process owns, and the next creation in a directory removes the files
// of killed processes - only those.
#include <fcntl.h>
#include <gtest/gtest.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <csignal>
#include <filesystem>
#include <string>
#include <vector>

#include "../common/cli_run.h"
#include "../common/temp_dir.h"
#include "kv/disk_store.h"
#include "util/atomic_file.h"
#include "util/error.h"
#include "util/owned_file.h"

namespace flashmem {
namespace {

namespace fs = std::filesystem;
using test::dead_pid;
using test::fresh_dir;
using test::names_in;
using test::slurp;
using test::write_text;

constexpr std::string_view kMagic = "TESTMAGC";
const OwnedName kName{"owned-", ".test", kMagic};

// The message of the Error `create` throws ("" if it does not throw).
template <typename F>
std::string error_of(F create) {
  try {
    create();
  } catch (const Error& e) {
    return e.what();
  }
  return "";
}

TEST(OwnedFile, ExistingFileOrSymlinkIsRefusedAndLeftAsItWas) {
  const fs::path dir = fresh_dir("refuse");
  const fs::path keep = dir / "keep.txt", victim = dir / "victim", link = dir / "link",
                 dangling = dir / "dangling";
  write_text(keep, "x\n");
  write_text(victim, "victim bytes");
  fs::create_symlink(victim, link);
  fs::create_symlink(dir / "not-yet", dangling);
  for (const fs::path& path : {keep, link, dangling, dir / "."}) {
    const std::string message = error_of([&] { OwnedFile::create(path.string(), "test file"); });
    EXPECT_NE(message.find("'" + path.string() + "' already exists"), std::string::npos) << message;
  }
  EXPECT_EQ(slurp(keep), "x\n");
  EXPECT_EQ(slurp(victim), "victim bytes");
  EXPECT_FALSE(fs::exists(dir / "not-yet"));  // the dangling symlink was not followed either
  // The KV store the same way (it used to truncate the file, then remove it).
  const std::string message = error_of([&] { DiskStore::create(keep.string(), 4096); });
  EXPECT_NE(message.find("KV store file '" + keep.string() + "' already exists"), std::string::npos)
      << message;
  EXPECT_EQ(slurp(keep), "x\n");
  EXPECT_EQ(names_in(dir), (std::vector<std::string>{"dangling", "keep.txt", "link", "victim"}));
  fs::remove_all(dir);
}

TEST(OwnedFile, NewFileIsPrivateAndRemovedUnlessKept) {
  const fs::path dir = fresh_dir("new");
  std::string kept_path;
  {
    OwnedFile a = OwnedFile::create((dir / "a").string(), "test file");
    OwnedFile b = OwnedFile::create_in(dir.string(), kName);
    OwnedFile c = OwnedFile::create_in(dir.string(), kName);
    struct stat st{};
    ASSERT_EQ(::fstat(b.fd(), &st), 0);
    EXPECT_EQ(st.st_mode & 0777, 0600u);
    // PREFIX + PID + '.' + 16 random hex digits + SUFFIX: two files never share a name.
    const std::string prefix = "owned-" + std::to_string(::getpid()) + ".";
    const std::string name = fs::path(b.path()).filename().string();
    EXPECT_EQ(name.rfind(prefix, 0), 0u) << name;
    EXPECT_EQ(name.size(), prefix.size() + 16 + 5) << name;
    EXPECT_NE(b.path(), c.path());
    EXPECT_EQ(names_in(dir).size(), 3u);
    OwnedFile moved = std::move(c);  // the duty to remove moves with the file
    kept_path = moved.path();
    moved.keep();
  }
  EXPECT_EQ(names_in(dir), std::vector<std::string>{fs::path(kept_path).filename().string()});
  fs::remove_all(dir);
}

TEST(OwnedFile, NextCreationRemovesOnlyStaleFilesOfDeadOwners) {
  const fs::path dir = fresh_dir("stale");
  const std::string dead = std::to_string(dead_pid()), live = std::to_string(::getppid());
  const std::string magic(kMagic);
  // Removed: a dead owner's file with the magic, an empty one (killed before its first write),
  // one named the way earlier versions named KV files.
  write_text(dir / ("owned-" + dead + ".0123456789abcdef.test"), magic + "pages");
  write_text(dir / ("owned-" + dead + ".00000000000000ff.test"), "");
  write_text(dir / ("owned-" + dead + "-0.test"), magic);
  // Kept: a live owner's; another magic; not our name pattern; a symlink to someone's file; a
  // file whose lock is held (a live owner in another PID namespace).
  const std::vector<std::string> kept = {
      "owned-" + live + ".0123456789abcdef.test", "owned-" + dead + ".1111111111111111.test",
      "owned-" + dead + ".xyz.test",              "owned-" + dead + ".0123.other",
      "owned-" + dead + ".2222222222222222.test", "owned-" + dead + ".3333333333333333.test",
      "victim"};
  write_text(dir / kept[0], magic);
  write_text(dir / kept[1], "a user's file that is not ours");
  write_text(dir / kept[2], magic);
  write_text(dir / kept[3], magic);
  write_text(dir / "victim", magic + " victim");
  fs::create_symlink(dir / "victim", dir / kept[4]);
  write_text(dir / kept[5], magic);
  const int locked = ::open((dir / kept[5]).c_str(), O_RDONLY | O_CLOEXEC);
  ASSERT_GE(locked, 0);
  ASSERT_EQ(::flock(locked, LOCK_EX), 0);
  {
    OwnedFile fresh = OwnedFile::create_in(dir.string(), kName);
    std::vector<std::string> expected = kept;
    expected.push_back(fs::path(fresh.path()).filename().string());
    std::sort(expected.begin(), expected.end());
    EXPECT_EQ(names_in(dir), expected);
  }
  ::close(locked);
  EXPECT_EQ(slurp(dir / "victim"), magic + " victim");
  fs::remove_all(dir);
}

TEST(OwnedFile, AtomicWriteRemovesStaleTempFilesOfItsTarget) {
  const fs::path dir = fresh_dir("atomic");
  const std::string dead = std::to_string(dead_pid()), live = std::to_string(::getppid());
  const std::string stale = "out.json.tmp." + dead + ".deadbeef";  // an interrupted write
  const std::vector<std::string> kept = {"out.json.tmp." + live + ".deadbeef",   // still writing
                                         "other.json.tmp." + dead + ".deadbeef"};  // another target
  for (const auto& name : kept) write_text(dir / name, "partial");
  write_text(dir / stale, "partial");
  write_file_atomic((dir / "out.json").string(), "{}\n");
  EXPECT_EQ(slurp(dir / "out.json"), "{}\n");
  EXPECT_EQ(names_in(dir), (std::vector<std::string>{"other.json.tmp." + dead + ".deadbeef",
                                                     "out.json", "out.json.tmp." + live + ".deadbeef"}));
  // A write that fails leaves no temp file and the old file.
  EXPECT_THROW(write_file_atomic((dir / "out.json").string(), [](FileSink&) { fail("boom"); }), Error);
  EXPECT_EQ(slurp(dir / "out.json"), "{}\n");
  EXPECT_EQ(names_in(dir).size(), 3u);
  fs::remove_all(dir);
}

// Each cleanup signal in the middle of an atomic write, with a KV store and a kept file open: the
// process dies of the signal and leaves only the kept file and the target's old version.
class OwnedFileSignal : public ::testing::TestWithParam<int> {};

TEST_P(OwnedFileSignal, RemovesRegisteredFilesThenDiesOfTheSignal) {
  const int sig = GetParam();
  const fs::path dir = fresh_dir("signal");
  write_text(dir / "out.bin", "old");
  const pid_t pid = ::fork();
  ASSERT_GE(pid, 0);
  if (pid == 0) {  // the child ends by the signal or by _exit, never back in the test runner
    ::signal(sig, SIG_DFL);  // as an interactive user's process has it
    install_cleanup_signal_handlers();
    try {
      auto store = DiskStore::create(dir.string(), 4096);
      OwnedFile::create_in(dir.string(), kName).keep();
      write_file_atomic((dir / "out.bin").string(), [&](FileSink& sink) {
        sink.write("new", 3);
        ::raise(sig);  // handled here: the default action ends the process when the handler returns
      });
    } catch (...) {
    }
    ::_exit(3);  // not reached when the signal did its job
  }
  int status = 0;
  ASSERT_EQ(::waitpid(pid, &status, 0), pid);
  ASSERT_TRUE(WIFSIGNALED(status)) << "status " << status;
  EXPECT_EQ(WTERMSIG(status), sig);
  const std::vector<std::string> names = names_in(dir);
  ASSERT_EQ(names.size(), 2u);
  EXPECT_EQ(names[0], "out.bin");
  EXPECT_EQ(names[1].rfind("owned-" + std::to_string(pid) + ".", 0), 0u) << names[1];
  EXPECT_EQ(slurp(dir / "out.bin"), "old");
  fs::remove_all(dir);
}

INSTANTIATE_TEST_SUITE_P(Signals, OwnedFileSignal,
                         ::testing::Values(SIGTERM, SIGINT, SIGHUP, SIGPIPE),
                         [](const auto& info) { return std::to_string(info.param); });

}  // namespace
}  // namespace flashmem
