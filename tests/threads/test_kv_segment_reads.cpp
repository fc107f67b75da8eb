// quest's in-step segment reads beside the recall worker, on one DiskStore (run under TSan by
// `make test-tsan`): a decode thread appends and commits pages (write-through) and, like a quest
// step, reads single layers of earlier pages with read_segment; a selector thread changes the
// pool's selection at random, so the recall worker reads whole pages (lsa's prefetch); a third
// thread reads random layers of any written page. Every segment read is compared with the same
// segment of a RAM store holding the same pages.
#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <random>
#include <thread>
#include <vector>

#include "../common/kv_pattern.h"
#include "../common/random_selector.h"
#include "kv/disk_store.h"
#include "kv/resident_pool.h"

namespace flashmem {
namespace {

using test::check_page;
using test::make_page;

// 4 layers x 4 tokens x kv_dim 8 x f32 = 1024-byte pages of four 256-byte layer segments: small
// pages give many page boundaries (writes) and many reads per second.
const PageLayout kLayers = PageLayout::make(4, 4, 8, 4);
constexpr int64_t kSegments = 4;     // one per layer, as PagedKv creates its stores
constexpr int64_t kPositions = 480;  // 120 pages

// One segment read of `store` compared with the RAM store's; "" when equal.
std::string check_segment(KvStore& store, RamStore& ram, int64_t page, int64_t layer) {
  std::vector<uint8_t> got(store.segment_bytes()), want(ram.segment_bytes());  // [layer_bytes]
  if (ram.read_segment(page, layer, want.data()) != StoreStatus::kOk)
    return "page " + std::to_string(page) + " missing from the RAM store";
  const StoreStatus status = store.read_segment(page, layer, got.data());
  if (status != StoreStatus::kOk)
    return "page " + std::to_string(page) + " layer " + std::to_string(layer) + ": " + to_string(status);
  if (got != want) return "page " + std::to_string(page) + " layer " + std::to_string(layer) + " differs";
  return "";
}

TEST(KvSegmentReadsThreads, QuestReadsBesideRecallWorkerOnOneDiskStore) {
  auto disk = DiskStore::create(test::temp_kv_path("segment_reads_threads"), kLayers.page_bytes(),
                                {.segments = kSegments});
  RamStore ram(kLayers.page_bytes(), kSegments);
  // 10 cells: sink 1 + tail 2 + open 1 leave 6 for selections, fewer than the pages written, so
  // selections keep evicting and recalling.
  ResidentPool pool(*disk, ResidentPoolConfig{kLayers, 10 * kLayers.page_bytes(), 1, 2, false});
  std::atomic<int64_t> written{0};  // pages [0, written) are in both stores (release/acquire)
  std::atomic<bool> finished{false};
  std::atomic<int64_t> selections{0}, side_reads{0};

  std::thread selector = test::random_selector(pool, finished, selections, 11, 7);
  std::thread reader([&] {
    std::mt19937_64 rng(12);
    while (!finished.load()) {
      const int64_t n = written.load(std::memory_order_acquire);
      if (n == 0) {
        std::this_thread::yield();
        continue;
      }
      const auto page = static_cast<int64_t>(rng() % n), layer = static_cast<int64_t>(rng() % kSegments);
      EXPECT_EQ(check_segment(*disk, ram, page, layer), "");
      side_reads.fetch_add(1);
    }
  });
  test::ThreadJoiner joiner{finished, selector, reader};

  std::mt19937_64 rng(13);
  std::vector<uint8_t> k(kLayers.row_bytes()), v(kLayers.row_bytes());  // [kv_dim] f32 each
  int64_t step_reads = 0;
  for (int64_t pos = 0; pos < kPositions; ++pos) {
    if (pos % kLayers.page_tokens == 0) test::pace_selections(selections);
    test::append_pattern_position(pool, kLayers.n_layers, pos, k, v);
    // The step's own segment reads: for each layer, two written pages at random (quest reads the
    // chosen pages that are not resident straight from the store, inside the step).
    if (const int64_t n = written.load(std::memory_order_relaxed); n > 0) {
      for (int64_t layer = 0; layer < kSegments; ++layer)
        for (int r = 0; r < 2; ++r, ++step_reads) {
          ASSERT_EQ(check_segment(*disk, ram, static_cast<int64_t>(rng() % n), layer), "") << "pos " << pos;
        }
    }
    ASSERT_EQ(test::check_view_and_commit(pool, kLayers, pos), "") << "pos " << pos;
    if ((pos + 1) % kLayers.page_tokens == 0) {  // the page was written through to the disk store
      const int64_t page = pos / kLayers.page_tokens;
      ASSERT_EQ(ram.write_page(page, make_page(kLayers, page).data()), StoreStatus::kOk);
      written.store(page + 1, std::memory_order_release);
    }
  }
  const PoolStats s = test::finish_concurrent_run(joiner, pool);
  EXPECT_EQ(s.recall_misses, 0u);
  EXPECT_GT(s.recalls, 10u);  // the recall worker did read from the store
  EXPECT_GT(selections.load(), 10);
  EXPECT_GT(side_reads.load(), 10);
  EXPECT_GT(step_reads, 100);
  // Every byte the store returned is accounted: recalls read whole pages, segment reads layers.
  EXPECT_EQ(disk->bytes_read(), s.bytes_recalled + static_cast<uint64_t>(step_reads + side_reads.load()) *
                                                       disk->segment_bytes());
}

}  // namespace
}  // namespace flashmem
