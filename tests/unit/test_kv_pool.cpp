// ResidentPool: budget, page table, LRU over unpinned pages, accounting recounts, no stale bytes
// after cell reuse, misses and write-through failures reported, zero-copy accounting = copying.
#include <gtest/gtest.h>

#include <algorithm>
#include <random>
#include <set>

#include "../common/kv_pattern.h"
#include "kv/disk_store.h"
#include "kv/resident_pool.h"
#include "util/error.h"

namespace flashmem {
namespace {

using test::check_page;
using test::make_page;

// 2 layers x 4 tokens x kv_dim 8 x f32 = 512-byte pages: hundreds of pages in milliseconds.
const PageLayout kSmall = PageLayout::make(2, 4, 8, 4);

ResidentPoolConfig config_with_cells(int64_t cells, int64_t sink = 1, int64_t recent = 2,
                                     bool zero_copy = false) {
  // Budget a few bytes short of one more cell: n_cells must round down.
  return ResidentPoolConfig{kSmall, uint64_t(cells + 1) * kSmall.page_bytes() - 1, sink, recent, zero_copy};
}

void ingest_pages(ResidentPool& pool, int64_t n) {
  for (int64_t i = 0; i < n; ++i) {
    const int64_t page = pool.open_page();
    ASSERT_EQ(pool.ingest_page(page, make_page(kSmall, page).data()), StoreStatus::kOk);
  }
}

std::vector<int64_t> view_pages(const ResidentView& view) {
  std::vector<int64_t> pages;
  for (const PageView& p : view.pages()) pages.push_back(p.page);
  return pages;
}

TEST(KvResidentPool, RejectsBadConfigurations) {
  RamStore ram(kSmall.page_bytes());
  EXPECT_THROW(ResidentPool(ram, config_with_cells(3)), Error);  // sink 1 + recent 2 + open 1 = 4
  EXPECT_NO_THROW(ResidentPool(ram, config_with_cells(4)));
  RamStore other(kSmall.page_bytes() * 2);
  EXPECT_THROW(ResidentPool(other, config_with_cells(8)), Error);  // page size mismatch
  auto disk = DiskStore::create(test::temp_kv_path("pool_cfg"), kSmall.page_bytes());
  EXPECT_THROW(ResidentPool(*disk, config_with_cells(8, 1, 2, /*zero_copy=*/true)), Error);
  EXPECT_THROW(ResidentPool(ram, config_with_cells(8, -1, 2)), Error);
}

TEST(KvResidentPool, AppendCommitWritesThroughAndServesPartialOpenPage) {
  RamStore ram(kSmall.page_bytes());
  ResidentPool pool(ram, config_with_cells(6));
  std::vector<uint8_t> k(kSmall.row_bytes()), v(kSmall.row_bytes());
  const int64_t n_positions = 2 * kSmall.page_tokens + 3;  // two full pages and a partial one
  for (int64_t pos = 0; pos < n_positions; ++pos) {
    test::append_pattern_position(pool, kSmall.n_layers, pos, k, v);
    ResidentView view = pool.resident_pages(pos + 1);  // decode attends over 0..pos
    int64_t tokens = 0;
    for (const PageView& p : view.pages()) {
      ASSERT_EQ(check_page(kSmall, p.page, p.data, p.n_tokens), "");
      tokens += p.n_tokens;
    }
    EXPECT_EQ(tokens, pos + 1);
    EXPECT_EQ(pool.stats().last_attended_bytes, uint64_t(tokens) * 2 * kSmall.n_layers * kSmall.row_bytes());
    view.release();
    ASSERT_EQ(pool.commit(pos + 1), StoreStatus::kOk);
  }
  EXPECT_EQ(pool.open_page(), 2);
  EXPECT_TRUE(ram.has_page(0) && ram.has_page(1) && !ram.has_page(2));
  EXPECT_EQ(std::memcmp(ram.page_data(1), make_page(kSmall, 1).data(), kSmall.page_bytes()), 0);
  EXPECT_EQ(pool.stats().bytes_written, 2 * kSmall.page_bytes());
  // Committed rows are immutable, commits never go back, layers are checked.
  EXPECT_THROW(pool.append(0, n_positions - 1, k.data(), v.data()), Error);
  EXPECT_THROW(pool.append(2, n_positions, k.data(), v.data()), Error);
  EXPECT_THROW(pool.append(0, n_positions + kSmall.page_tokens, k.data(), v.data()), Error);
  EXPECT_THROW(pool.commit(n_positions - 1), Error);
  EXPECT_THROW(pool.commit(3 * kSmall.page_tokens + 1), Error);
  EXPECT_THROW(pool.ingest_page(2, k.data()), Error);  // open page already has tokens
  EXPECT_THROW(pool.resident_pages(3 * kSmall.page_tokens + 1), Error);
  EXPECT_EQ(pool.check_invariants(), "");
}

TEST(KvResidentPool, LruEvictsLeastRecentlySelectedUnpinnedPage) {
  RamStore ram(kSmall.page_bytes());
  ResidentPool pool(ram, config_with_cells(5, /*sink=*/1, /*recent=*/1));  // 2 selectable cells
  ingest_pages(pool, 10);  // open page 10; cells: 0 (sink), 7, 8, 9 (tail), 10 (open)
  EXPECT_EQ(pool.cell_pages().size(), 5u);
  auto table = [&](int64_t page) { return pool.page_table()[page]; };
  EXPECT_GE(table(7), 0);
  EXPECT_GE(table(8), 0);
  EXPECT_LT(table(6), 0);

  const int64_t sel3[] = {3}, sel4[] = {4}, sel5[] = {5}, sel46[] = {4, 6};
  EXPECT_EQ(pool.set_selection(sel3).recalls_scheduled, 1);  // evicts 7: left the tail first
  EXPECT_EQ(pool.wait_resident(3), StoreStatus::kOk);
  EXPECT_LT(table(7), 0);
  EXPECT_GE(table(8), 0);
  pool.set_selection(sel4);  // evicts 8 (left the tail before 3 was selected)
  EXPECT_EQ(pool.wait_resident(4), StoreStatus::kOk);
  EXPECT_LT(table(8), 0);
  pool.set_selection(sel5);  // 3 and 4 unpinned: 3 was selected longer ago
  EXPECT_EQ(pool.wait_resident(5), StoreStatus::kOk);
  EXPECT_LT(table(3), 0);
  EXPECT_GE(table(4), 0);
  const SelectionResult r = pool.set_selection(sel46);  // 4 is a cache hit; 6 evicts 5
  EXPECT_EQ(r.already_resident, 1);
  EXPECT_EQ(r.recalls_scheduled, 1);
  EXPECT_EQ(pool.wait_resident(6), StoreStatus::kOk);
  EXPECT_LT(table(5), 0);
  EXPECT_EQ(view_pages(pool.resident_pages(pool.n_tokens())), (std::vector<int64_t>{0, 4, 6, 9}));
  // Prefill evicted pages 1..6 (each as it aged out behind the tail), then 7, 8, 3 and 5.
  EXPECT_EQ(pool.stats().evictions, 10u);
  EXPECT_EQ(pool.check_invariants(), "");
}

// A seeded run of prefill, decode and random selections (often over capacity, sometimes without
// waiting for the recalls). After every step: the view is exactly sink + tail + open + the kept
// selection, every byte read matches its page, the tables are consistent, the budget holds, and
// the counters equal a recount.
struct RandomRunResult {
  PoolStats stats;
  std::vector<std::vector<int64_t>> views;  // page list of every step's view
};

RandomRunResult random_run(KvStore& store, bool zero_copy, bool always_wait, uint64_t seed) {
  // 12 cells: 8 selectable besides sink, tail and open page -- small enough that almost every
  // selection evicts and reuses cells, large enough for varied selections.
  constexpr int64_t kCells = 12, kSink = 1, kRecent = 2;
  constexpr int64_t kCapacity = kCells - kSink - kRecent - 1;
  ResidentPool pool(store, config_with_cells(kCells, kSink, kRecent, zero_copy));
  std::mt19937_64 rng(seed);
  RandomRunResult out;
  int64_t scheduled = 0;
  std::vector<int64_t> wanted;  // last selection's kept pages (pages not in sink/tail)
  std::vector<uint8_t> k(kSmall.row_bytes()), v(kSmall.row_bytes());
  for (int step = 0; step < 300; ++step) {
    // Advance: a whole page (prefill) or a few decode positions row by row.
    if (pool.n_tokens() % kSmall.page_tokens == 0 && rng() % 2 == 0) {
      const int64_t page = pool.open_page();
      EXPECT_EQ(pool.ingest_page(page, make_page(kSmall, page).data()), StoreStatus::kOk);
    } else {
      const int64_t n = 1 + static_cast<int64_t>(rng() % 3);
      for (int64_t i = 0; i < n; ++i) {
        const int64_t pos = pool.n_tokens();
        test::append_pattern_position(pool, kSmall.n_layers, pos, k, v);
        EXPECT_EQ(pool.commit(pos + 1), StoreStatus::kOk);
      }
    }
    const int64_t open = pool.open_page();
    if (step % 3 == 0 && open > 0) {
      // Random selection, up to capacity + 4 pages, priority order = generation order.
      std::vector<int64_t> pages;
      const int64_t n = static_cast<int64_t>(rng() % (kCapacity + 5));
      for (int64_t i = 0; i < n; ++i) pages.push_back(static_cast<int64_t>(rng() % open));
      const SelectionResult r = pool.set_selection(pages);
      scheduled += r.recalls_scheduled;
      wanted.clear();
      std::set<int64_t> seen;
      for (int64_t p : pages)
        if (seen.insert(p).second && p >= kSink && p < open) wanted.push_back(p);
      EXPECT_EQ(r.requested, static_cast<int64_t>(wanted.size()));
      EXPECT_EQ(r.dropped, std::max<int64_t>(0, r.requested - kCapacity));
      if (static_cast<int64_t>(wanted.size()) > kCapacity) wanted.resize(kCapacity);
      if (always_wait || rng() % 2 == 0) pool.wait_recalls_idle();
    }
    const int64_t n_tokens = pool.n_tokens();
    ResidentView view = pool.resident_pages(n_tokens);
    std::set<int64_t> expected(wanted.begin(), wanted.end());
    for (int64_t p = 0; p < kSink && p <= open; ++p) expected.insert(p);
    for (int64_t p = std::max<int64_t>(0, open - kRecent); p <= open; ++p) expected.insert(p);
    if (n_tokens == kSmall.first_pos(open)) expected.erase(open);  // empty open page
    EXPECT_EQ(view_pages(view), std::vector<int64_t>(expected.begin(), expected.end())) << "step " << step;
    EXPECT_TRUE(view.missed().empty());
    for (const PageView& p : view.pages()) {
      EXPECT_EQ(p.n_tokens, std::min(kSmall.page_tokens, n_tokens - kSmall.first_pos(p.page)));
      EXPECT_EQ(check_page(kSmall, p.page, p.data, p.n_tokens), "") << "step " << step;
    }
    out.views.push_back(view_pages(view));
    view.release();

    EXPECT_EQ(pool.check_invariants(), "") << "step " << step;
    const PoolStats s = pool.stats();
    const std::vector<int64_t> cells = pool.cell_pages();
    const auto used = static_cast<uint64_t>(std::count_if(cells.begin(), cells.end(), [](int64_t p) { return p >= 0; }));
    EXPECT_EQ(s.resident_bytes, used * kSmall.page_bytes());
    EXPECT_LE(s.resident_bytes, s.budget_bytes);
    EXPECT_LE(s.peak_resident_bytes, s.budget_bytes);
    EXPECT_EQ(s.n_cells, kCells);
    EXPECT_EQ(s.bytes_written, store.bytes_written());
    EXPECT_EQ(s.bytes_recalled, s.recalls * kSmall.page_bytes());
    if (!zero_copy) {
      EXPECT_EQ(store.bytes_read(), s.bytes_recalled);
    }
    // Every cell assignment (opened pages + scheduled recalls) is resident or was released by an
    // eviction, a cancellation or a miss.
    EXPECT_EQ(uint64_t(open + 1 + scheduled), used + s.evictions + s.recalls_cancelled + s.recall_misses);
    EXPECT_EQ(s.stale_reports, 0u);
    if (::testing::Test::HasFailure()) break;
  }
  out.stats = pool.stats();
  return out;
}

TEST(KvResidentPool, RandomSelectionsRam) {
  for (uint64_t seed : {1u, 2u, 3u}) {
    RamStore ram(kSmall.page_bytes());
    const RandomRunResult r = random_run(ram, false, false, seed);
    EXPECT_GT(r.stats.evictions, 50u);
    EXPECT_GT(r.stats.recalls, 50u);
    EXPECT_GT(r.stats.selection_dropped, 0u);
  }
}

TEST(KvResidentPool, RandomSelectionsDisk) {
  auto disk = DiskStore::create(test::temp_kv_path("pool_random"), kSmall.page_bytes());
  random_run(*disk, false, false, 7);
}

// Zero-copy maps mirror pages instead of copying them; everything that is accounted is the same.
TEST(KvResidentPool, ZeroCopyAccountingEqualsCopying) {
  RamStore ram_a(kSmall.page_bytes()), ram_b(kSmall.page_bytes());
  const RandomRunResult copying = random_run(ram_a, false, true, 11);
  const RandomRunResult mapped = random_run(ram_b, true, true, 11);
  EXPECT_EQ(copying.views, mapped.views);
  const PoolStats& a = copying.stats;
  const PoolStats& b = mapped.stats;
  EXPECT_EQ(a.resident_bytes, b.resident_bytes);
  EXPECT_EQ(a.peak_resident_bytes, b.peak_resident_bytes);
  EXPECT_DOUBLE_EQ(a.avg_resident_bytes, b.avg_resident_bytes);
  EXPECT_EQ(a.bytes_recalled, b.bytes_recalled);
  EXPECT_EQ(a.recalls, b.recalls);
  EXPECT_EQ(a.evictions, b.evictions);
  EXPECT_EQ(a.selection_dropped, b.selection_dropped);
  EXPECT_EQ(a.bytes_written, b.bytes_written);
  EXPECT_EQ(a.attended_bytes, b.attended_bytes);
  EXPECT_GT(a.attended_bytes, 0u);
  EXPECT_EQ(ram_b.bytes_read(), 0u);  // no copies were made
}

TEST(KvResidentPool, RecallMissIsReportedNeverServed) {
  test::FaultyFileIo io;
  auto disk = DiskStore::create(test::temp_kv_path("pool_miss"), kSmall.page_bytes(), {.io = &io});
  ResidentPool pool(*disk, config_with_cells(8));
  ingest_pages(pool, 12);
  io.flip_offset = 4096 + 5 * 4096 + 17;  // page 5's data on disk reads back with a flipped bit
  const int64_t sel[] = {5, 6};
  pool.set_selection(sel);
  ResidentView view = pool.resident_pages(pool.n_tokens());
  EXPECT_EQ(view.missed(), std::vector<int64_t>{5});
  EXPECT_EQ(view_pages(view), (std::vector<int64_t>{0, 6, 10, 11}));  // open page 12 is empty
  for (const PageView& p : view.pages()) EXPECT_EQ(check_page(kSmall, p.page, p.data, p.n_tokens), "");
  view.release();
  EXPECT_EQ(pool.wait_resident(5), StoreStatus::kCorrupt);
  EXPECT_EQ(pool.stats().recall_misses, 1u);
  EXPECT_TRUE(pool.acquire(5).missed() == std::vector<int64_t>{5});
  EXPECT_EQ(pool.check_invariants(), "");
  pool.wait_recalls_idle();  // the worker is idle: safe to change the fault knobs
  io.flip_offset = -1;
  pool.set_selection(sel);  // selecting it again retries the recall
  EXPECT_EQ(pool.wait_resident(5), StoreStatus::kOk);
  ResidentView five = pool.acquire(5);
  ASSERT_EQ(five.pages().size(), 1u);
  EXPECT_EQ(check_page(kSmall, 5, five.pages()[0].data, kSmall.page_tokens), "");
}

TEST(KvResidentPool, FailedWriteThroughKeepsPageUntilSaved) {
  test::FaultyFileIo io;
  auto disk = DiskStore::create(test::temp_kv_path("pool_enospc"), kSmall.page_bytes(), {.io = &io});
  ResidentPool pool(*disk, config_with_cells(6));
  ingest_pages(pool, 2);
  io.write_errno = ENOSPC;
  EXPECT_EQ(pool.ingest_page(2, make_page(kSmall, 2).data()), StoreStatus::kNoSpace);
  EXPECT_FALSE(disk->has_page(2));
  EXPECT_EQ(pool.stats().write_failures, 1u);
  io.write_errno = 0;
  ingest_pages(pool, 10);  // page 2 leaves the tail but is never evicted: its only copy
  EXPECT_GE(pool.page_table()[2], 0);
  ResidentView two = pool.acquire(2);
  ASSERT_EQ(two.pages().size(), 1u);
  EXPECT_EQ(check_page(kSmall, 2, two.pages()[0].data, kSmall.page_tokens), "");
  two.release();
  EXPECT_EQ(pool.retry_unsaved(), StoreStatus::kOk);
  EXPECT_TRUE(disk->has_page(2));
  ingest_pages(pool, 6);  // now evictable like any other page
  EXPECT_LT(pool.page_table()[2], 0);
  EXPECT_EQ(pool.check_invariants(), "");
}

TEST(KvResidentPool, SelectedTailPageStaysPinnedAfterTheTailMoves) {
  RamStore ram(kSmall.page_bytes());
  ResidentPool pool(ram, config_with_cells(6, 1, 2));  // 2 selectable cells
  ingest_pages(pool, 6);                               // open 6, tail {4, 5}
  const int64_t sel[] = {5};
  const SelectionResult r = pool.set_selection(sel);
  EXPECT_EQ(r.requested, 1);
  EXPECT_EQ(r.already_resident, 1);
  ingest_pages(pool, 5);  // open 11, tail {9, 10}: page 5 is held by the selection alone
  EXPECT_EQ(view_pages(pool.resident_pages(pool.n_tokens())), (std::vector<int64_t>{0, 5, 9, 10}));
  EXPECT_EQ(pool.check_invariants(), "");
}

TEST(KvResidentPool, LeasedPagesAreNotEvicted) {
  RamStore ram(kSmall.page_bytes());
  ResidentPool pool(ram, config_with_cells(5, 1, 1));  // 2 selectable cells
  ingest_pages(pool, 10);
  ResidentView seven = pool.acquire(7);  // resident, unpinned, now leased
  ASSERT_EQ(seven.pages().size(), 1u);
  const int64_t sel[] = {2, 3};
  const SelectionResult r = pool.set_selection(sel);  // only 8 is evictable
  EXPECT_EQ(r.recalls_scheduled, 1);
  EXPECT_EQ(r.dropped, 1);
  EXPECT_GE(pool.page_table()[7], 0);
  EXPECT_EQ(check_page(kSmall, 7, seven.pages()[0].data, kSmall.page_tokens), "");
  seven.release();
  EXPECT_EQ(pool.set_selection(sel).recalls_scheduled, 1);  // 7 can go now
  pool.wait_recalls_idle();
  EXPECT_LT(pool.page_table()[7], 0);
  EXPECT_EQ(pool.check_invariants(), "");
}

}  // namespace
}  // namespace flashmem
