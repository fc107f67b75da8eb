// `flashmem run --kv-store disk:PATH` as a user runs it (issue 14): an existing file - the model
// itself included - is refused and left byte-identical, a symlink planted under the old
// predictable name is not followed, SIGTERM/SIGINT leave no KV file, and after kill -9 the next
// start in the same directory removes the file the killed process left.
#include <fcntl.h>
#include <gtest/gtest.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <csignal>
#include <filesystem>
#include <functional>
#include <string>
#include <thread>
#include <vector>

#include "../common/cli_run.h"
#include "../common/temp_dir.h"

namespace flashmem {
namespace {

namespace fs = std::filesystem;
using test::fresh_dir;
using test::names_in;
using test::run_flashmem;
using test::slurp;
using test::write_text;

const std::string kModel = std::string(FLASHMEM_TEST_DATA) + "/models/stories260K.gguf";

// The repro: a short quest run with its KV pages in `store`.
std::string short_run(const std::string& store) {
  return "run -m " + kModel + " -p '' -n 30 --policy quest:3 --page-tokens 16 --kv-store 'disk:" +
         store + "'";
}

// `path` holds exactly `expected`; a failure prints sizes, not the bytes (a model, a KV file).
void expect_bytes(const fs::path& path, const std::string& expected) {
  const std::string actual = slurp(path);
  EXPECT_TRUE(actual == expected) << path << " changed: " << actual.size() << " bytes, "
                                  << expected.size() << " before";
}

// Starts flashmem with `args` as a direct child (fork + exec, no shell, so a signal reaches
// flashmem itself), stdout and stderr to /dev/null, the default action for SIGINT and SIGTERM (as
// in an interactive shell, whatever the test runner's are). `in_child` runs just before exec.
pid_t start_flashmem(const std::vector<std::string>& args,
                     const std::function<void()>& in_child = nullptr) {
  std::vector<std::string> argv_strings = {FLASHMEM_BIN};
  argv_strings.insert(argv_strings.end(), args.begin(), args.end());
  std::vector<char*> argv;
  for (std::string& s : argv_strings) argv.push_back(s.data());
  argv.push_back(nullptr);
  const pid_t pid = ::fork();
  if (pid != 0) return pid;
  ::signal(SIGINT, SIG_DFL);
  ::signal(SIGTERM, SIG_DFL);
  const int null = ::open("/dev/null", O_WRONLY);
  ::dup2(null, STDOUT_FILENO);
  ::dup2(null, STDERR_FILENO);
  if (in_child) in_child();
  ::execv(argv[0], argv.data());
  ::_exit(127);
}

// Waits (at most `seconds`) for `pid` to end; returns its wait status, or kills it and returns -1.
int wait_for_exit(pid_t pid, double seconds = 60) {
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::duration<double>(seconds);
  int status = 0;
  while (::waitpid(pid, &status, WNOHANG) == 0) {
    if (std::chrono::steady_clock::now() > deadline) {
      ::kill(pid, SIGKILL);
      ::waitpid(pid, &status, 0);
      return -1;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  return status;
}

// Waits (at most 60 s) until `dir` holds a KV file with its header written, which flashmem
// writes after registering the file for cleanup; "" if the process ended or time ran out first.
std::string wait_for_kv_file(const fs::path& dir, pid_t pid) {
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(60);
  while (std::chrono::steady_clock::now() < deadline) {
    for (const auto& entry : fs::directory_iterator(dir)) {
      std::error_code error;
      if (entry.path().filename().string().rfind("flashmem-kv-", 0) == 0 &&
          fs::file_size(entry.path(), error) > 0 && !error)
        return entry.path().string();
    }
    if (::waitpid(pid, nullptr, WNOHANG) != 0) return "";
    std::this_thread::sleep_for(std::chrono::milliseconds(2));
  }
  return "";
}

// Starts a run with its KV pages in `dir` that is still prefilling seconds after its KV file
// appears (a 7,500-token prompt: full attention over it takes 5-20 s on one thread), sends `sig`
// once the file is there and returns the run's wait status; `kv_file` is the file ("" if it never
// appeared: the run is killed, -1).
int signal_long_run(const fs::path& dir, int sig, std::string& kv_file) {
  const fs::path prompt = dir.string() + ".prompt.txt";
  std::string text;
  for (int i = 0; i < 100; ++i) text += "Once upon a time there was a little girl named Lily. ";
  write_text(prompt, text);
  const pid_t pid = start_flashmem({"run", "-m", kModel, "-f", prompt.string(), "-n", "1", "-t",
                                    "1", "--policy", "full", "--page-tokens", "16", "--kv-store",
                                    "disk:" + dir.string()});
  kv_file = wait_for_kv_file(dir, pid);
  ::kill(pid, kv_file.empty() ? SIGKILL : sig);
  const int status = wait_for_exit(pid);
  fs::remove(prompt);
  return kv_file.empty() ? -1 : status;
}

TEST(KvStoreFiles, ExistingFileIsRefusedAndLeftByteIdentical) {
  const fs::path dir = fresh_dir("existing");
  const fs::path keep = dir / "keep.txt";
  write_text(keep, "x\n");
  const test::RunResult r = run_flashmem(short_run(keep.string()));
  EXPECT_GT(r.exit_code, 0) << r.err;  // an error, not a signal
  EXPECT_NE(r.err.find("error: KV store file '" + keep.string() + "' already exists"),
            std::string::npos) << r.err;
  EXPECT_EQ(slurp(keep), "x\n");
  EXPECT_EQ(names_in(dir), std::vector<std::string>{"keep.txt"});
  fs::remove_all(dir);
}

TEST(KvStoreFiles, TheModelFileItselfIsRefusedAndLeftByteIdentical) {
  // A copy of the model, so a regression cannot destroy the test data (it used to SIGBUS and
  // leave the model 48 bytes long).
  const fs::path dir = fresh_dir("model");
  const fs::path model = dir / "model.gguf";
  fs::copy_file(kModel, model);
  const test::RunResult r = run_flashmem("run -m " + model.string() +
                                         " -p '' -n 30 --policy quest:3 --page-tokens 16 "
                                         "--kv-store disk:" + model.string());
  EXPECT_GT(r.exit_code, 0) << r.err;  // an error, not a signal
  EXPECT_NE(r.err.find(model.string() + "' already exists"), std::string::npos) << r.err;
  expect_bytes(model, slurp(kModel));
  fs::remove_all(dir);
}

TEST(KvStoreFiles, SymlinkPlantedInTheDirectoryIsNotFollowed) {
  // The old name of the process's first KV file, DIR/flashmem-kv-PID-0.pages, planted as a
  // symlink to a victim by the child itself just before exec (the issue's `exec` repro).
  const fs::path dir = fresh_dir("symlink");
  const fs::path victim = dir.string() + ".victim";
  write_text(victim, "victim bytes");
  const std::vector<std::string> args = {"run", "-m", kModel, "-p", "", "-n", "30", "--policy",
                                         "quest:3", "--page-tokens", "16", "--kv-store",
                                         "disk:" + dir.string()};
  const pid_t pid = start_flashmem(args, [&] {
    const std::string link = dir.string() + "/flashmem-kv-" + std::to_string(::getpid()) + "-0.pages";
    if (::symlink(victim.c_str(), link.c_str()) != 0) ::_exit(126);
  });
  const int status = wait_for_exit(pid);
  ASSERT_TRUE(WIFEXITED(status)) << "status " << status;
  EXPECT_EQ(WEXITSTATUS(status), 0);
  expect_bytes(victim, "victim bytes");
  // Only the symlink is left: the run's own KV file was created beside it and removed at exit.
  EXPECT_EQ(names_in(dir), std::vector<std::string>{"flashmem-kv-" + std::to_string(pid) + "-0.pages"});
  // A symlink given as the file name itself is refused, not followed.
  const fs::path link = dir / "link.pages";
  fs::create_symlink(victim, link);
  const test::RunResult r = run_flashmem(short_run(link.string()));
  EXPECT_GT(r.exit_code, 0) << r.err;  // an error, not a signal
  expect_bytes(victim, "victim bytes");
  fs::remove_all(dir);
  fs::remove(victim);
}

class KvStoreFilesSignal : public ::testing::TestWithParam<int> {};

TEST_P(KvStoreFilesSignal, LeavesNoKvFile) {
  const int sig = GetParam();
  const fs::path dir = fresh_dir("signal");
  std::string kv_file;
  const int status = signal_long_run(dir, sig, kv_file);
  ASSERT_FALSE(kv_file.empty()) << "flashmem ended before its KV file appeared";
  ASSERT_TRUE(WIFSIGNALED(status)) << "status " << status << ": the run ended before the signal";
  EXPECT_EQ(WTERMSIG(status), sig);  // the exit status is the signal's
  EXPECT_EQ(names_in(dir), std::vector<std::string>{});
  fs::remove_all(dir);
}

INSTANTIATE_TEST_SUITE_P(Signals, KvStoreFilesSignal, ::testing::Values(SIGTERM, SIGINT),
                         [](const auto& info) { return info.param == SIGTERM ? "TERM" : "INT"; });

TEST(KvStoreFiles, NextStartRemovesTheFileOfAKilledRun) {
  const fs::path dir = fresh_dir("kill9");
  std::string kv_file;
  const int status = signal_long_run(dir, SIGKILL, kv_file);
  ASSERT_FALSE(kv_file.empty()) << "flashmem ended before its KV file appeared";
  ASSERT_TRUE(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL) << "status " << status;
  // kill -9 cannot be handled: the file stays...
  ASSERT_EQ(names_in(dir), std::vector<std::string>{fs::path(kv_file).filename().string()});
  // ...until the next start with the same directory, which removes it (and then its own).
  const test::RunResult r = run_flashmem(short_run(dir.string()));
  EXPECT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(names_in(dir), std::vector<std::string>{});
  fs::remove_all(dir);
}

}  // namespace
}  // namespace flashmem
