// `flashmem serve` as a child process of a test: whether a helper program is installed, and the
// port a server started with --port 0 announces in its start-up log.
#pragma once
#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <regex>
#include <string>
#include <thread>
#include <vector>

#include "cli_run.h"
#include "spawn.h"

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

// `flashmem serve ARGS --port 0` as a child process, its log in `log`: port() is the port it
// announced (-1 when it did not start within `seconds`). The destructor stops it (SIGTERM, then
// SIGKILL after its grace) and reaps it, so no server outlives its test.
class ServeChild {
 public:
  ServeChild(std::vector<std::string> args, const std::filesystem::path& log, double seconds = 60) : log_(log) {
    args.insert(args.begin(), "serve");
    args.insert(args.end(), {"--port", "0", "--shutdown-grace", "0"});
    pid_ = spawn_flashmem(args, log.string());
    port_ = announced_port(log, seconds);
  }
  ~ServeChild() { stop(); }
  ServeChild(const ServeChild&) = delete;
  ServeChild& operator=(const ServeChild&) = delete;

  int port() const { return port_; }
  std::string url() const { return "http://127.0.0.1:" + std::to_string(port_); }
  std::string log() const { return slurp(log_); }
  // Stops the server: SIGKILL (`crash`) or SIGTERM. Idempotent.
  void stop(bool crash = false) {
    if (pid_ <= 0) return;
    ::kill(pid_, crash ? SIGKILL : SIGTERM);
    wait_exit(pid_);
    pid_ = -1;
  }

 private:
  std::filesystem::path log_;
  pid_t pid_ = -1;
  int port_ = -1;
};

}  // namespace flashmem::test
