// Test helper for the threaded KV tests: a thread that keeps changing a ResidentPool's selection
// to random pages below the open page (what the lsa cycle does, much faster), so the recall worker
// is always busy evicting and recalling while the test's other threads read.
#pragma once
#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <cstdint>
#include <random>
#include <thread>
#include <vector>

#include "kv/resident_pool.h"

namespace flashmem::test {

// Runs until `finished`; each selection holds up to max_pages - 1 pages and counts in `selections`.
inline std::thread random_selector(ResidentPool& pool, const std::atomic<bool>& finished,
                                   std::atomic<int64_t>& selections, uint64_t seed, int max_pages) {
  return std::thread([&pool, &finished, &selections, seed, max_pages] {
    std::mt19937_64 rng(seed);
    while (!finished.load()) {
      const int64_t open = pool.open_page();
      if (open == 0) {
        std::this_thread::yield();
        continue;
      }
      std::vector<int64_t> pages(rng() % static_cast<uint64_t>(max_pages));
      for (int64_t& p : pages) p = static_cast<int64_t>(rng() % static_cast<uint64_t>(open));
      pool.set_selection(pages);
      selections.fetch_add(1);
      // Now and then a pause, so the worker also finishes its recalls between selections.
      if (rng() % 4 == 0) std::this_thread::sleep_for(std::chrono::microseconds(200));
    }
  });
}

// Waits until the selector has made 2 more selections, at most 50 ms (so that a stalled helper
// thread cannot hang the test): decode calls it at page boundaries so every page sees a few.
inline void pace_selections(const std::atomic<int64_t>& selections) {
  const int64_t target = selections.load() + 2;
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(50);
  while (selections.load() < target && std::chrono::steady_clock::now() < deadline)
    std::this_thread::sleep_for(std::chrono::microseconds(50));
}

// Stops and joins the helper threads on every exit path (a failed ASSERT returns early).
struct ThreadJoiner {
  std::atomic<bool>& finished;
  std::thread& a;
  std::thread& b;
  void stop() {
    finished.store(true);
    if (a.joinable()) a.join();
    if (b.joinable()) b.join();
  }
  ~ThreadJoiner() { stop(); }
};

// The end of a concurrent run: stops the helper threads, lets the recall worker finish, and checks
// what every such run must hold (the pool's invariants, no stale report). Returns the pool's
// stats for the test's own checks.
inline PoolStats finish_concurrent_run(ThreadJoiner& joiner, ResidentPool& pool) {
  joiner.stop();
  pool.wait_recalls_idle();
  EXPECT_EQ(pool.check_invariants(), "");
  const PoolStats stats = pool.stats();
  EXPECT_EQ(stats.stale_reports, 0u);
  return stats;
}

}  // namespace flashmem::test
