// Recall worker and resident pool under concurrency (run under TSan by `make test-tsan`):
// random selections on one thread while a decode thread appends, commits and reads its resident
// pages and a third thread acquires random pages. No races, no stale bytes, consistent tables.
#include <gtest/gtest.h>

#include <atomic>
#include <map>
#include <memory>
#include <set>
#include <random>
#include <thread>

#include "../common/kv_pattern.h"
#include "../common/random_selector.h"
#include "kv/disk_store.h"
#include "kv/recall_worker.h"
#include "kv/resident_pool.h"

namespace flashmem {
namespace {

using test::check_page;
using test::make_page;

// 2 layers x 4 tokens x kv_dim 8 x f32 = 512-byte pages: many page boundaries per second.
const PageLayout kSmall = PageLayout::make(2, 4, 8, 4);

TEST(KvRecallWorker, EveryJobCompletesOrIsCancelledExactlyOnce) {
  RamStore ram(kSmall.page_bytes());
  constexpr int kPages = 64;
  for (int p = 0; p < kPages; ++p) ASSERT_EQ(ram.write_page(p, make_page(kSmall, p).data()), StoreStatus::kOk);
  std::vector<std::vector<uint8_t>> dst(kPages, std::vector<uint8_t>(kSmall.page_bytes()));
  std::mutex mutex;
  std::map<int64_t, int> done;  // page -> reports
  RecallWorker worker(ram, [&](const RecallJob& job, StoreStatus status) {
    EXPECT_EQ(status, StoreStatus::kOk);
    std::lock_guard lock(mutex);
    done[job.page] += 1;
  });
  std::vector<RecallJob> jobs;
  for (int p = 0; p < kPages; ++p) jobs.push_back(RecallJob{p, p, 1, dst[p].data()});
  worker.submit(jobs);
  const std::vector<RecallJob> cancelled = worker.cancel_if([](const RecallJob& j) { return j.page % 2 == 1; });
  worker.wait_idle();
  std::lock_guard lock(mutex);
  std::set<int64_t> cancelled_pages;
  for (const RecallJob& j : cancelled) cancelled_pages.insert(j.page);
  for (int p = 0; p < kPages; ++p) {
    const bool was_cancelled = cancelled_pages.count(p) != 0;
    EXPECT_EQ(done[p], was_cancelled ? 0 : 1) << "page " << p;
    if (was_cancelled) {
      EXPECT_EQ(p % 2, 1);
    } else {
      EXPECT_EQ(check_page(kSmall, p, dst[p].data(), kSmall.page_tokens), "");
    }
  }
}

TEST(KvRecallWorker, ShutdownWithQueuedJobsReturnsThemUntouched) {
  RamStore ram(kSmall.page_bytes());
  for (int p = 0; p < 256; ++p) ASSERT_EQ(ram.write_page(p, make_page(kSmall, p).data()), StoreStatus::kOk);
  std::vector<uint8_t> dst(256 * kSmall.page_bytes());
  std::atomic<int> reports{0};
  RecallWorker worker(ram, [&](const RecallJob&, StoreStatus) { reports.fetch_add(1); });
  std::vector<RecallJob> jobs;
  for (int p = 0; p < 256; ++p) jobs.push_back(RecallJob{p, p, 1, dst.data() + p * kSmall.page_bytes()});
  worker.submit(jobs);
  const std::vector<RecallJob> dropped = worker.shutdown();
  EXPECT_EQ(reports.load() + static_cast<int>(dropped.size()), 256);
  EXPECT_TRUE(worker.shutdown().empty());  // idempotent
}

// Three threads on one pool: decode (append, read all resident pages, commit), a selector
// (random set_selection), and a reader (acquire + wait_resident of random pages).
void concurrent_run(KvStore& store, uint64_t seed, bool zero_copy) {
  constexpr int64_t kPositions = 480;  // 120 pages of 4 tokens
  ResidentPool pool(store, ResidentPoolConfig{kSmall, 10 * kSmall.page_bytes(), 1, 2, zero_copy});
  std::atomic<bool> finished{false};
  std::atomic<int64_t> selections{0}, acquired{0};

  std::thread selector = test::random_selector(pool, finished, selections, seed, 10);
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
        EXPECT_EQ(p.page, page);
        EXPECT_EQ(check_page(kSmall, page, p.data, p.n_tokens), "");
        acquired.fetch_add(1);
      }
      view.release();
      pool.wait_resident(static_cast<int64_t>(rng() % open));
    }
  });

  test::ThreadJoiner joiner{finished, selector, reader};

  std::vector<uint8_t> k(kSmall.row_bytes()), v(kSmall.row_bytes());
  for (int64_t pos = 0; pos < kPositions; ++pos) {
    // Every page boundary sees a few selections and acquires in between.
    if (pos % kSmall.page_tokens == 0) test::pace_selections(selections);
    test::append_pattern_position(pool, kSmall.n_layers, pos, k, v);
    ASSERT_EQ(test::check_view_and_commit(pool, kSmall, pos), "") << "pos " << pos;
  }
  const PoolStats s = test::finish_concurrent_run(joiner, pool);
  EXPECT_LE(s.peak_resident_bytes, s.budget_bytes);
  EXPECT_GT(selections.load(), 10);
  EXPECT_GT(acquired.load(), 10);
  EXPECT_GT(s.recalls, 10u);
}

TEST(KvResidentPoolThreads, RandomSelectionsWhileDecodingRam) {
  RamStore ram(kSmall.page_bytes());
  concurrent_run(ram, 101, false);
}

TEST(KvResidentPoolThreads, RandomSelectionsWhileDecodingZeroCopy) {
  RamStore ram(kSmall.page_bytes());
  concurrent_run(ram, 202, true);
}

TEST(KvResidentPoolThreads, RandomSelectionsWhileDecodingDisk) {
  auto disk = DiskStore::create(test::temp_kv_path("threads_disk"), kSmall.page_bytes());
  concurrent_run(*disk, 303, false);
}

// Destroying a pool with recalls queued and running is safe (the worker reports into a live
// pool and then stops).
TEST(KvResidentPoolThreads, DestroyWithRecallsInFlight) {
  for (int round = 0; round < 20; ++round) {
    std::unique_ptr<KvStore> store;
    if (round % 2) store = std::make_unique<RamStore>(kSmall.page_bytes());
    else store = DiskStore::create(test::temp_kv_path("threads_destroy"), kSmall.page_bytes());
    ResidentPool pool(*store, ResidentPoolConfig{kSmall, 12 * kSmall.page_bytes(), 1, 2, false});
    for (int64_t p = 0; p < 40; ++p)
      ASSERT_EQ(pool.ingest_page(p, make_page(kSmall, p).data()), StoreStatus::kOk);
    std::vector<int64_t> evicted;  // pages 1..8 aged out during the prefill
    for (int64_t p = 1; p <= 8; ++p) evicted.push_back(p);
    EXPECT_EQ(pool.set_selection(evicted).recalls_scheduled, 8);
  }  // pool destroyed with copies queued or running, then its store
}

}  // namespace
}  // namespace flashmem
