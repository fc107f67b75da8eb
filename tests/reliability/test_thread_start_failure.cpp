// A worker thread that cannot be started (EAGAIN: thread or memory limit) is an Error, after the
// workers already started are stopped and joined; it used to end in std::terminate (rc 134).
#include <gtest/gtest.h>

#include <atomic>
#include <cerrno>
#include <string>
#include <system_error>
#include <thread>

#include "util/error.h"
#include "util/thread_pool.h"

namespace flashmem {
namespace {

TEST(ThreadPoolStart, FailureIsAnErrorAndStartedWorkersAreJoined) {
  std::atomic<int> running{0};
  int started = 0;
  // Starts three workers, then fails the way std::thread does at the thread limit.
  const ThreadPool::ThreadStarter start_three = [&](std::function<void()> body) {
    if (started == 3) throw std::system_error(EAGAIN, std::generic_category(), "cannot create thread");
    ++started;
    return std::thread([&running, body = std::move(body)] {
      running.fetch_add(1);
      body();
      running.fetch_sub(1);
    });
  };
  std::string message;
  try {
    ThreadPool pool(8, start_three);
  } catch (const Error& e) {
    message = e.what();
  }
  EXPECT_NE(message.find("cannot start worker thread 4 of 7"), std::string::npos) << message;
  EXPECT_NE(message.find("cannot create thread"), std::string::npos) << message;
  EXPECT_EQ(started, 3);
  EXPECT_EQ(running.load(), 0);  // every started worker returned and was joined

  // The first thread failing, and a pool that starts its threads normally afterwards.
  started = 3;
  EXPECT_THROW(ThreadPool(2, start_three), Error);
  ThreadPool pool(4);
  std::atomic<int> parts{0};
  pool.run([&](int) { parts.fetch_add(1); });
  EXPECT_EQ(parts.load(), 4);
}

}  // namespace
}  // namespace flashmem
