// A private redis-server (Debian's binary) for a test: started on a free loopback port with
// persistence off, stopped (SIGTERM, then reaped) when the object goes. Tests that need it skip
// with a clear message only when the binary is absent (`make test` installs it).
#pragma once
#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <filesystem>
#include <string>
#include <thread>
#include <vector>

#include <gtest/gtest.h>

#include "kv/redis_client.h"
#include "util/error.h"

namespace flashmem::test {

inline std::string redis_server_binary() {
  for (const char* path : {"/usr/bin/redis-server", "/usr/local/bin/redis-server"})
    if (std::filesystem::exists(path)) return path;
  return "";
}

#define FLASHMEM_SKIP_WITHOUT_REDIS()                                                        \
  do {                                                                                       \
    if (::flashmem::test::redis_server_binary().empty())                                     \
      GTEST_SKIP() << "redis-server is not installed (Debian package redis-server; make test " \
                      "installs it)";                                                        \
  } while (0)

// A TCP port that was free a moment ago (bound to port 0 and released).
inline int free_loopback_port() {
  const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  addr.sin_port = 0;
  socklen_t len = sizeof addr;
  if (fd < 0 || ::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0 ||
      ::getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len) != 0)
    fail("no free loopback port");
  ::close(fd);
  return ntohs(addr.sin_port);
}

class RedisServer {
 public:
  // extra: more redis-server options, e.g. {"--maxmemory", "1mb"}.
  explicit RedisServer(const std::vector<std::string>& extra = {}) : port_(free_loopback_port()) {
    std::vector<std::string> args = {redis_server_binary(), "--port", std::to_string(port_),
                                     "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
                                     "--loglevel", "warning"};
    args.insert(args.end(), extra.begin(), extra.end());
    std::vector<char*> argv;
    for (std::string& a : args) argv.push_back(a.data());
    argv.push_back(nullptr);
    pid_ = ::fork();
    if (pid_ == 0) {
      const int null = ::open("/dev/null", O_WRONLY);
      ::dup2(null, 1);
      ::dup2(null, 2);
      ::execv(argv[0], argv.data());
      ::_exit(127);
    }
    // Ready when it answers PING; 10 s covers a start on a loaded machine.
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
    for (;;) {
      try {
        RedisConnection probe(address(), std::chrono::milliseconds(500));
        return;
      } catch (const Error&) {
        if (std::chrono::steady_clock::now() > deadline) {
          stop();
          fail("redis-server did not start on port {}", port_);
        }
        std::this_thread::sleep_for(std::chrono::milliseconds(20));
      }
    }
  }
  ~RedisServer() { stop(); }
  RedisServer(const RedisServer&) = delete;
  RedisServer& operator=(const RedisServer&) = delete;

  int port() const { return port_; }
  RedisAddress address(const std::string& prefix = "flashmem-test") const {
    RedisAddress a;
    a.host = "127.0.0.1";
    a.port = port_;
    a.prefix = prefix;
    return a;
  }
  std::string url(const std::string& prefix = "flashmem-test") const {
    return "redis://127.0.0.1:" + std::to_string(port_) + "/" + prefix;
  }
  // SIGKILL: the server vanishes as in a crash.
  void kill() {
    if (pid_ > 0) {
      ::kill(pid_, SIGKILL);
      reap();
    }
  }
  void stop() {
    if (pid_ > 0) {
      ::kill(pid_, SIGTERM);
      reap();
    }
  }

 private:
  void reap() {
    int status = 0;
    while (::waitpid(pid_, &status, 0) < 0 && errno == EINTR) {
    }
    pid_ = -1;
  }
  int port_;
  pid_t pid_ = -1;
};

// One server shared by every test of a process that only needs *a* server (started on first use,
// stopped at exit).
inline RedisServer& shared_redis_server() {
  static RedisServer server;
  return server;
}

// The --kv-store value for a test parameterised over the slow tiers: "ram", "disk" (the test
// temp directory) or "redis" (the shared private server).
inline std::string kv_store_for(const std::string& tier) {
  if (tier == "ram") return "ram";
  if (tier == "redis") return shared_redis_server().url();
  return "disk:" + ::testing::TempDir();
}

}  // namespace flashmem::test
