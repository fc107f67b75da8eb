// Runs the flashmem binary (FLASHMEM_BIN) from a test and captures its exit code, stdout and
// stderr. Capture files are named per process and per test: ctest runs the tests of one file in
// parallel, each in its own process.
#pragma once
#include <gtest/gtest.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <optional>
#include <sstream>
#include <string>

namespace flashmem::test {

struct RunResult {
  int exit_code = -1;  // -1 when the process did not exit normally
  std::string out, err;
};

inline std::string slurp(const std::filesystem::path& path) {
  std::string text;
  if (FILE* f = std::fopen(path.c_str(), "rb")) {
    char buf[4096];
    size_t n;
    while ((n = std::fread(buf, 1, sizeof buf, f)) > 0) text.append(buf, n);
    std::fclose(f);
  }
  return text;
}

// A temp path unique to this process and the running test: prefix_TEST_what_PID.
// Parameterised test names ("Case/2") have their '/' replaced.
inline std::filesystem::path test_temp_path(const std::string& prefix, const std::string& what) {
  std::string name = ::testing::UnitTest::GetInstance()->current_test_info()->name();
  for (char& ch : name)
    if (ch == '/') ch = '_';
  return std::filesystem::temp_directory_path() /
         (prefix + "_" + name + "_" + what + "_" + std::to_string(::getpid()));
}

struct RunOptions {
  // > 0: the process is killed after this many seconds (exit code 124), so a test of a hang
  // fails instead of hanging.
  int timeout_seconds = 0;
  // > 0: address-space limit (ulimit -v) in MiB, so a test of a runaway allocation fails fast.
  // Under AddressSanitizer, whose shadow memory alone reserves terabytes of address space, the
  // same cap is ASan's own resident-memory limit (hard_rss_limit_mb) instead.
  int memory_limit_mb = 0;
  // > 0: file-size limit in bytes (prlimit --fsize) with SIGXFSZ ignored, so writes past it fail
  // with EFBIG like writes to a full disk, instead of killing the process.
  int64_t file_size_limit_bytes = 0;
  // Non-empty: stdout goes there (e.g. /dev/full) instead of into RunResult::out.
  std::string stdout_path = {};
};

// A shell command line (it may hold quotes and redirections of its own), its stdout and stderr
// captured.
inline RunResult run_shell(const std::string& command_line, const RunOptions& options = {}) {
  const std::filesystem::path out = test_temp_path("flashmem_cli", "out");
  const std::filesystem::path err = test_temp_path("flashmem_cli", "err");
  std::string command = command_line + " >" + (options.stdout_path.empty() ? out.string() : options.stdout_path) +
                        " 2>" + err.string();
  if (options.timeout_seconds > 0)
    command = "timeout -k 2 " + std::to_string(options.timeout_seconds) + " " + command;
  if (options.file_size_limit_bytes > 0)
    command = "trap '' XFSZ; prlimit --fsize=" + std::to_string(options.file_size_limit_bytes) + " " + command;
  if (options.memory_limit_mb > 0) {
#if defined(__SANITIZE_ADDRESS__)
    command = "ASAN_OPTIONS=\"${ASAN_OPTIONS:+$ASAN_OPTIONS:}hard_rss_limit_mb=" +
              std::to_string(options.memory_limit_mb) + "\" " + command;
#else
    command = "ulimit -v " + std::to_string(options.memory_limit_mb * 1024) + "; " + command;
#endif
  }
  const int status = std::system(command.c_str());
  RunResult r;
  r.exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  r.out = slurp(out);
  r.err = slurp(err);
  std::filesystem::remove(out);
  std::filesystem::remove(err);
  return r;
}

// `flashmem ARGS` through the shell (ARGS may hold quotes and redirections of its own).
inline RunResult run_flashmem(const std::string& args, const RunOptions& options = {}) {
  return run_shell(std::string(FLASHMEM_BIN) + " " + args, options);
}

// One row of `flashmem eval-tasks`' table ("family length samples score solved"), read from its
// stdout; nullopt when `family` has no row.
struct EvalTasksRow {
  int length = 0, samples = 0;
  double score = 0, solved = 0;
};
inline std::optional<EvalTasksRow> eval_tasks_row(const std::string& out, const std::string& family) {
  const size_t at = out.find(family);
  if (at == std::string::npos) return std::nullopt;
  std::istringstream row(out.substr(at));
  std::string name;
  EvalTasksRow r;
  row >> name >> r.length >> r.samples >> r.score >> r.solved;
  return r;
}

}  // namespace flashmem::test
