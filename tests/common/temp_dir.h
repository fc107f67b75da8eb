// Directories and processes for the tests of files flashmem creates (tests/reliability/): a fresh
// directory per test, files in it and its listing, and a PID that certainly has no process.
#pragma once
#include <gtest/gtest.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <filesystem>
#include <string>
#include <vector>

#include "cli_run.h"

namespace flashmem::test {

// An empty directory unique to this process and the running test (removed first if left over).
inline std::filesystem::path fresh_dir(const std::string& what) {
  const std::filesystem::path dir = test_temp_path("flashmem_dir", what);
  std::filesystem::remove_all(dir);
  std::filesystem::create_directories(dir);
  return dir;
}

inline void write_text(const std::filesystem::path& path, const std::string& text) {
  FILE* f = std::fopen(path.c_str(), "wb");
  ASSERT_NE(f, nullptr) << path;
  std::fwrite(text.data(), 1, text.size(), f);
  std::fclose(f);
}

// The names in `dir`, sorted (symlinks included, not followed).
inline std::vector<std::string> names_in(const std::filesystem::path& dir) {
  std::vector<std::string> names;
  for (const auto& entry : std::filesystem::directory_iterator(dir))
    names.push_back(entry.path().filename().string());
  std::sort(names.begin(), names.end());
  return names;
}

// The PID of a child that has exited and been reaped: no process has it (until the kernel
// reuses it, which takes a full cycle through pid_max).
inline pid_t dead_pid() {
  const pid_t pid = ::fork();
  if (pid == 0) ::_exit(0);
  ::waitpid(pid, nullptr, 0);
  return pid;
}

}  // namespace flashmem::test
