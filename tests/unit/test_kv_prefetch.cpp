// ResidentPool::prefetch (lookahead recall): fills free cells, then least recently used
// unpinned ones, never a pinned page nor one it was asked for; stops and counts when no cell is
// left; a later set_selection finds the prefetched pages without a second copy and cancels the
// queued prefetches it does not select.
#include <gtest/gtest.h>

#include <condition_variable>
#include <mutex>

#include "../common/kv_pattern.h"
#include "kv/resident_pool.h"
#include "util/error.h"

namespace flashmem {
namespace {

using test::check_page;
using test::make_page;

// 2 layers x 4 tokens x kv_dim 8 x f32 = 512-byte pages.
const PageLayout kSmall = PageLayout::make(2, 4, 8, 4);

ResidentPoolConfig config(int64_t cells, int64_t prefetch_cells, int64_t sink = 1, int64_t recent = 1) {
  ResidentPoolConfig c{kSmall, uint64_t(cells) * kSmall.page_bytes(), sink, recent, false};
  c.prefetch_cells = prefetch_cells;
  return c;
}

void ingest_pages(ResidentPool& pool, int64_t n) {
  for (int64_t i = 0; i < n; ++i) {
    const int64_t page = pool.open_page();
    ASSERT_EQ(pool.ingest_page(page, make_page(kSmall, page).data()), StoreStatus::kOk);
  }
}

bool resident(const ResidentPool& pool, int64_t page) { return pool.page_table()[page] >= 0; }

// A RamStore whose reads (the recall worker's) wait until open(): recalls stay queued or running
// for as long as a test needs.
class GatedStore final : public KvStore {
 public:
  explicit GatedStore(size_t page_bytes) : KvStore(page_bytes, 1), ram_(page_bytes) {}
  StoreStatus write_page(int64_t page, const uint8_t* bytes) override { return ram_.write_page(page, bytes); }
  StoreStatus read_page(int64_t page, uint8_t* dst) override {
    wait_open();
    return ram_.read_page(page, dst);
  }
  StoreStatus read_segment(int64_t page, int64_t segment, uint8_t* dst) override {
    wait_open();
    return ram_.read_segment(page, segment, dst);
  }
  bool has_page(int64_t page) const override { return ram_.has_page(page); }
  void open() {
    std::lock_guard lock(mutex_);
    open_ = true;
    cv_.notify_all();
  }

 private:
  void wait_open() {
    std::unique_lock lock(mutex_);
    cv_.wait(lock, [&] { return open_; });
  }
  RamStore ram_;
  std::mutex mutex_;
  std::condition_variable cv_;
  bool open_ = false;
};

TEST(KvPrefetch, FillsLruCellsWithoutTouchingPinnedOrWantedPages) {
  RamStore ram(kSmall.page_bytes());
  // 8 cells, 2 of them for prefetch: the selection holds at most 8 - 2 - 1 - 1 - 1 = 3 pages.
  ResidentPool pool(ram, config(8, 2));
  ingest_pages(pool, 12);  // open page 12: sink 0, tail 11, open 12; 6..10 cached (LRU)
  const int64_t sel[] = {2, 3};
  ASSERT_EQ(pool.set_selection(sel).recalls_scheduled, 2);  // evicts 6 and 7
  pool.wait_recalls_idle();
  const PoolStats before = pool.stats();

  // 4, 5 and 1 each evict the oldest cached page (8, 9, 10); 3 is resident, 0 a sink page.
  const int64_t ahead[] = {4, 3, 5, 1, 0, 4};
  EXPECT_EQ(pool.prefetch(ahead), 3);
  pool.wait_recalls_idle();
  PoolStats s = pool.stats();
  EXPECT_EQ(s.prefetched, 3u);
  EXPECT_EQ(s.prefetch_dropped, 0u);
  EXPECT_EQ(s.recalls, before.recalls + 3);
  EXPECT_EQ(s.evictions, before.evictions + 3);
  for (int64_t p : {0, 2, 3, 11, 12, 4, 5, 1}) EXPECT_TRUE(resident(pool, p)) << p;
  for (int64_t p : {8, 9, 10}) EXPECT_FALSE(resident(pool, p)) << p;
  // Nothing attention reads changed: still sink, selection, tail, open page.
  ResidentView view = pool.resident_pages(pool.n_tokens());
  std::vector<int64_t> read;
  for (const PageView& p : view.pages()) read.push_back(p.page);
  EXPECT_EQ(read, (std::vector<int64_t>{0, 2, 3, 11}));  // the open page holds no token yet
  view.release();
  EXPECT_EQ(pool.selection(), (std::vector<int64_t>{2, 3}));

  // The only unpinned cells now hold 4, 5, 1: a prefetch of 6, 7, 4 may take two of them but
  // not 4's, and no pinned cell. Asked for more than that: the rest is dropped and counted.
  const int64_t more[] = {6, 7, 4, 8, 9};
  EXPECT_EQ(pool.prefetch(more), 2);
  pool.wait_recalls_idle();
  s = pool.stats();
  EXPECT_EQ(s.prefetched, 5u);
  EXPECT_EQ(s.prefetch_dropped, 2u);  // 8 and 9
  for (int64_t p : {0, 2, 3, 11, 12, 6, 7, 4}) EXPECT_TRUE(resident(pool, p)) << p;
  EXPECT_FALSE(resident(pool, 5) || resident(pool, 1));  // both gave their cells
  EXPECT_FALSE(resident(pool, 8) || resident(pool, 9));
  EXPECT_EQ(pool.check_invariants(), "");
  EXPECT_THROW(pool.prefetch(std::vector<int64_t>{13}), Error);
  EXPECT_THROW(pool.prefetch(std::vector<int64_t>{-1}), Error);
}

TEST(KvPrefetch, SelectionFindsPrefetchedPagesWithoutASecondCopy) {
  RamStore ram(kSmall.page_bytes());
  ResidentPool pool(ram, config(10, 3));
  ingest_pages(pool, 20);
  const int64_t ahead[] = {4, 7, 9};
  ASSERT_EQ(pool.prefetch(ahead), 3);  // ready or still in flight: both count as resident
  const int64_t sel[] = {9, 4, 7};
  const SelectionResult r = pool.set_selection(sel);
  EXPECT_EQ(r.already_resident, 3);
  EXPECT_EQ(r.recalls_scheduled, 0);
  pool.wait_recalls_idle();
  const PoolStats s = pool.stats();
  EXPECT_EQ(s.recalls, 3u);  // one copy per page
  EXPECT_EQ(s.prefetched, 3u);
  ResidentView view = pool.resident_pages(pool.n_tokens());
  std::vector<int64_t> read;
  for (const PageView& p : view.pages()) {
    read.push_back(p.page);
    EXPECT_EQ(check_page(kSmall, p.page, p.data, p.n_tokens), "") << p.page;
  }
  EXPECT_EQ(read, (std::vector<int64_t>{0, 4, 7, 9, 19}));
  view.release();
  EXPECT_EQ(pool.check_invariants(), "");
}

TEST(KvPrefetch, SelectionCancelsQueuedPrefetchesItDoesNotSelect) {
  GatedStore store(kSmall.page_bytes());
  ResidentPool pool(store, config(10, 3));
  struct Opener {  // declared after the pool: opens the gate before the pool waits for its worker
    GatedStore& store;
    ~Opener() { store.open(); }
  } opener{store};
  ingest_pages(pool, 20);
  const int64_t ahead[] = {4, 7, 9};
  ASSERT_EQ(pool.prefetch(ahead), 3);  // the worker holds at most 4's read; 7 and 9 stay queued
  const int64_t sel[] = {4};
  EXPECT_EQ(pool.set_selection(sel).already_resident, 1);
  PoolStats s = pool.stats();
  EXPECT_EQ(s.recalls_cancelled, 2u);
  EXPECT_FALSE(resident(pool, 7) || resident(pool, 9));
  EXPECT_TRUE(resident(pool, 4));
  store.open();
  pool.wait_recalls_idle();
  s = pool.stats();
  EXPECT_EQ(s.recalls, 1u);
  EXPECT_EQ(s.stale_reports, 0u);
  EXPECT_EQ(pool.wait_resident(4), StoreStatus::kOk);
  EXPECT_EQ(pool.check_invariants(), "");
}

TEST(KvPrefetch, PrefetchCellsStayOutOfTheSelectionsCapacity) {
  RamStore ram(kSmall.page_bytes());
  EXPECT_THROW(ResidentPool(ram, config(5, 3)), Error);  // sink 1 + tail 1 + open 1 + 3 > 5
  ResidentPool pool(ram, config(8, 2));                  // 3 selectable pages
  ingest_pages(pool, 12);
  const int64_t sel[] = {1, 2, 3, 4, 5};
  const SelectionResult r = pool.set_selection(sel);
  EXPECT_EQ(r.dropped, 2);
  EXPECT_EQ(pool.selection(), (std::vector<int64_t>{1, 2, 3}));
}

}  // namespace
}  // namespace flashmem
