// The pool's contract: every part runs exactly once per dispatch, ranges cover [0, n) exactly,
// and back-to-back dispatches never mix (a late worker must not run a finished dispatch's job).
// Run under TSan with `make test-tsan`.
#include <gtest/gtest.h>

#include <atomic>
#include <vector>

#include "util/thread_pool.h"

namespace flashmem {
namespace {

TEST(ThreadPool, EveryPartRunsExactlyOncePerDispatch) {
  for (int threads : {1, 2, 3, 5}) {
    ThreadPool pool(threads);
    std::vector<std::atomic<int>> counts(static_cast<size_t>(threads));
    for (int dispatch = 0; dispatch < 2000; ++dispatch) {
      for (auto& c : counts) c.store(0);
      pool.run([&](int part) { counts[static_cast<size_t>(part)].fetch_add(1); });
      for (auto& c : counts) ASSERT_EQ(c.load(), 1) << "threads " << threads;
    }
  }
}

TEST(ThreadPool, ParallelForCoversRangeExactly) {
  ThreadPool pool(3);
  for (int64_t n : {1, 2, 7, 64, 1000, 4097}) {
    for (int64_t grain : {1, 8, 64}) {
      std::vector<int> hits(static_cast<size_t>(n), 0);
      pool.parallel_for(n, grain, [&](int64_t b, int64_t e) {
        EXPECT_TRUE(b % grain == 0);
        for (int64_t i = b; i < e; ++i) ++hits[static_cast<size_t>(i)];
      });
      for (int h : hits) ASSERT_EQ(h, 1) << "n " << n << " grain " << grain;
    }
  }
}

TEST(ThreadPool, BackToBackDispatchesDoNotMix) {
  ThreadPool pool(4);
  std::atomic<int64_t> sum{0};
  for (int i = 1; i <= 5000; ++i) {
    const int64_t value = i;  // each dispatch's job captures its own value
    pool.run([&, value](int) { sum.fetch_add(value); });
  }
  EXPECT_EQ(sum.load(), 4 * int64_t{5000} * 5001 / 2);
}

}  // namespace
}  // namespace flashmem
