// Lookahead recall under concurrency (run under TSan by `make test-tsan`): one thread alternates
// prefetch() of random pages with a set_selection() of part of them and others (what an lsa
// cycle with --lsa-prefetch does, much faster), while a decode thread appends, commits and reads
// its resident pages and a third thread acquires random pages. No races, no stale bytes, every
// pinned page readable, consistent tables and counters.
#include <gtest/gtest.h>

#include <atomic>
#include <random>
#include <thread>

#include "../common/kv_pattern.h"
#include "../common/random_selector.h"
#include "kv/disk_store.h"
#include "kv/resident_pool.h"

namespace flashmem {
namespace {

using test::check_page;

// 2 layers x 4 tokens x kv_dim 8 x f32 = 512-byte pages: many page boundaries per second.
const PageLayout kSmall = PageLayout::make(2, 4, 8, 4);

void prefetching_run(KvStore& store, uint64_t seed, bool zero_copy) {
  constexpr int64_t kPositions = 480;  // 120 pages of 4 tokens
  // 14 cells: sink 1 + tail 2 + open 1 + up to 6 selected pages + 4 for prefetch.
  ResidentPoolConfig config{kSmall, 14 * kSmall.page_bytes(), 1, 2, zero_copy};
  config.prefetch_cells = 4;
  ResidentPool pool(store, config);
  std::atomic<bool> finished{false};
  std::atomic<int64_t> selections{0}, acquired{0};

  std::thread selector([&] {
    std::mt19937_64 rng(seed);
    while (!finished.load()) {
      const int64_t open = pool.open_page();
      if (open == 0) {
        std::this_thread::yield();
        continue;
      }
      // The next cycle's pages, prefetched; then a selection of some of them and a few others
      // (those prefetches not selected are cancelled or stay cached).
      std::vector<int64_t> next(1 + rng() % 8);
      for (int64_t& p : next) p = static_cast<int64_t>(rng() % static_cast<uint64_t>(open));
      pool.prefetch(next);
      if (rng() % 2 == 0) std::this_thread::sleep_for(std::chrono::microseconds(100));
      std::vector<int64_t> chosen;
      for (int64_t p : next)
        if (rng() % 3 != 0) chosen.push_back(p);
      chosen.push_back(static_cast<int64_t>(rng() % static_cast<uint64_t>(pool.open_page())));
      pool.set_selection(chosen);
      selections.fetch_add(1);
    }
  });
  std::thread reader([&] {
    std::mt19937_64 rng(seed + 1);
    while (!finished.load()) {
      const int64_t open = pool.open_page();
      if (open == 0) {
        std::this_thread::yield();
        continue;
      }
      const int64_t page = static_cast<int64_t>(rng() % open);
      ResidentView view = pool.acquire(page);
      for (const PageView& p : view.pages()) {
        EXPECT_EQ(check_page(kSmall, page, p.data, p.n_tokens), "");
        acquired.fetch_add(1);
      }
    }
  });
  test::ThreadJoiner joiner{finished, selector, reader};

  std::vector<uint8_t> k(kSmall.row_bytes()), v(kSmall.row_bytes());
  for (int64_t pos = 0; pos < kPositions; ++pos) {
    if (pos % kSmall.page_tokens == 0) test::pace_selections(selections);
    test::append_pattern_position(pool, kSmall.n_layers, pos, k, v);
    ASSERT_EQ(test::check_view_and_commit(pool, kSmall, pos), "") << "pos " << pos;
  }
  const PoolStats s = test::finish_concurrent_run(joiner, pool);
  EXPECT_LE(s.peak_resident_bytes, s.budget_bytes);
  EXPECT_GT(selections.load(), 10);
  EXPECT_GT(s.prefetched, 10u);
  EXPECT_GT(acquired.load(), 10);
}

TEST(KvPrefetchThreads, PrefetchAndSelectWhileDecodingRam) {
  RamStore ram(kSmall.page_bytes());
  prefetching_run(ram, 11, false);
}

TEST(KvPrefetchThreads, PrefetchAndSelectWhileDecodingZeroCopy) {
  RamStore ram(kSmall.page_bytes());
  prefetching_run(ram, 22, true);
}

TEST(KvPrefetchThreads, PrefetchAndSelectWhileDecodingDisk) {
  auto disk = DiskStore::create(test::temp_kv_path("prefetch_threads"), kSmall.page_bytes());
  prefetching_run(*disk, 33, false);
}

}  // namespace
}  // namespace flashmem
