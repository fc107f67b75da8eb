// `flashmem serve` as a child process of a test: whether a helper program is installed, and the
// port a server started with --port 0 announces in its start-up log.
#pragma once
#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <regex>
#include <string>
#include <thread>

#include "cli_run.h"

namespace flashmem::test {

// True when `program` is an entry of a PATH directory.
inline bool on_path(const std::string& program) {
  const char* path = std::getenv("PATH");
  for (std::string dirs = path ? path : ""; !dirs.empty();) {
    const size_t colon = std::min(dirs.find(':'), dirs.size());
    if (colon > 0 && std::filesystem::exists(std::filesystem::path(dirs.substr(0, colon)) / program)) return true;
    dirs.erase(0, colon + 1);
  }
  return false;
}

// The port the server's start-up log announces ("listening on http://127.0.0.1:PORT"), or -1
// after `seconds` without it.
inline int announced_port(const std::filesystem::path& log, double seconds) {
  const std::regex listening(R"(listening on http://127\.0\.0\.1:(\d+))");
  const auto end = std::chrono::steady_clock::now() + std::chrono::duration<double>(seconds);
  while (std::chrono::steady_clock::now() < end) {
    std::smatch m;
    const std::string text = slurp(log);
    if (std::regex_search(text, m, listening)) return std::stoi(m[1]);
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  return -1;
}

}  // namespace flashmem::test
