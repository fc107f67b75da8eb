// Recall throughput of the KV tiers: slow tier (RAM mirror or disk file) -> resident pool, for the
// 125M model's page (12 layers x 64 tokens x kv_dim 256 x f16 = 786,432 bytes). Each iteration
// switches the selection between two disjoint sets of 64 pages, so every selected page is
// recalled, and waits until attention could read them all. bytes_per_second = recalled bytes over
// wall time (the copies run on the recall worker, so real time is what matters).
#include <benchmark/benchmark.h>
#include <fcntl.h>
#include <unistd.h>

#include <cstring>
#include <filesystem>
#include <memory>
#include <numeric>

#include "kv/disk_store.h"
#include "kv/resident_pool.h"

namespace flashmem {
namespace {

const PageLayout kLayout = PageLayout::make(12, 64, 256, 2);
constexpr int64_t kPages = 160;     // 126 MB of history: larger than the pool, small for a shared box
constexpr int64_t kSelected = 64;   // pages recalled per cycle (50 MB)
// Cells: sink 1 + tail 2 + open 1 + one selection. Switching sets evicts every selected page.
constexpr int64_t kCells = 1 + 2 + 1 + kSelected;

enum class Tier { kRam, kRamZeroCopy, kDiskHot, kDiskCold };

struct Setup {
  std::unique_ptr<KvStore> store;
  std::unique_ptr<ResidentPool> pool;
  std::vector<int64_t> sets[2];  // [kSelected] pages each: [1, 65) and [80, 144)
  std::string path;
};

std::unique_ptr<Setup> make_setup(Tier tier) {
  auto s = std::make_unique<Setup>();
  const size_t page_bytes = kLayout.page_bytes();
  if (tier == Tier::kRam || tier == Tier::kRamZeroCopy) {
    s->store = std::make_unique<RamStore>(page_bytes);
  } else {
    // A directory: the store names its file (a fixed name left by a killed run would be refused).
    auto disk = DiskStore::create(std::filesystem::temp_directory_path().string(), page_bytes);
    s->path = disk->path();
    s->store = std::move(disk);
  }
  s->pool = std::make_unique<ResidentPool>(
      *s->store, ResidentPoolConfig{kLayout, kCells * page_bytes, 1, 2, tier == Tier::kRamZeroCopy});
  std::vector<uint8_t> page(page_bytes);  // [page_bytes], page-id dependent bytes
  for (int64_t p = 0; p < kPages; ++p) {
    std::iota(page.begin(), page.end(), static_cast<uint8_t>(p));
    if (s->pool->ingest_page(p, page.data()) != StoreStatus::kOk) return nullptr;
  }
  for (int i = 0; i < 2; ++i)
    for (int64_t p = 0; p < kSelected; ++p) s->sets[i].push_back((i == 0 ? 1 : 80) + p);
  return s;
}

void drop_page_cache(const std::string& path) {
  const int fd = ::open(path.c_str(), O_RDONLY);
  if (fd < 0) return;
  ::posix_fadvise(fd, 0, 0, POSIX_FADV_DONTNEED);  // clean pages only: the store was synced
  ::close(fd);
}

void BM_Recall(benchmark::State& state, Tier tier) {
  const std::unique_ptr<Setup> s = make_setup(tier);
  if (!s) {
    state.SkipWithError("could not build the store");
    return;
  }
  if (tier == Tier::kDiskCold && static_cast<DiskStore&>(*s->store).sync() != StoreStatus::kOk) {
    state.SkipWithError("fdatasync failed");
    return;
  }
  ResidentPool& pool = *s->pool;
  for (int i = 0; i < 2; ++i) {  // warm-up: one cycle per set
    pool.set_selection(s->sets[i]);
    pool.resident_pages(pool.n_tokens());
  }
  const uint64_t recalled_before = pool.stats().bytes_recalled;
  int which = 0;
  for (auto _ : state) {
    if (tier == Tier::kDiskCold) {
      state.PauseTiming();
      drop_page_cache(s->path);
      state.ResumeTiming();
    }
    pool.set_selection(s->sets[which]);
    ResidentView view = pool.resident_pages(pool.n_tokens());  // waits for every recall
    benchmark::DoNotOptimize(view.pages().data());
    which ^= 1;
  }
  const PoolStats stats = pool.stats();
  state.SetBytesProcessed(static_cast<int64_t>(stats.bytes_recalled - recalled_before));
  state.counters["pages/iter"] = static_cast<double>(kSelected);
  state.counters["page_KB"] = static_cast<double>(kLayout.page_bytes()) / 1024.0;
  state.counters["misses"] = static_cast<double>(stats.recall_misses);
}

// Baseline: one thread memcpy of the same bytes (what a RAM recall cannot beat).
void BM_MemcpyBaseline(benchmark::State& state) {
  const size_t bytes = kSelected * kLayout.page_bytes();
  std::vector<uint8_t> src(bytes, 1), dst(bytes, 2);  // [kSelected * page_bytes], touched
  for (auto _ : state) {
    for (int64_t p = 0; p < kSelected; ++p)
      std::memcpy(dst.data() + p * kLayout.page_bytes(), src.data() + p * kLayout.page_bytes(),
                  kLayout.page_bytes());
    benchmark::DoNotOptimize(dst.data());
  }
  state.SetBytesProcessed(static_cast<int64_t>(state.iterations() * bytes));
}

BENCHMARK(BM_MemcpyBaseline)->UseRealTime()->Unit(benchmark::kMillisecond);
BENCHMARK_CAPTURE(BM_Recall, ram_to_pool, Tier::kRam)->UseRealTime()->Unit(benchmark::kMillisecond);
BENCHMARK_CAPTURE(BM_Recall, ram_zero_copy, Tier::kRamZeroCopy)->UseRealTime()->Unit(benchmark::kMillisecond);
BENCHMARK_CAPTURE(BM_Recall, disk_hot_to_pool, Tier::kDiskHot)->UseRealTime()->Unit(benchmark::kMillisecond);
// Cold: the file's page cache is dropped before every cycle (bounded: 10 cycles of 50 MB).
BENCHMARK_CAPTURE(BM_Recall, disk_cold_to_pool, Tier::kDiskCold)
    ->UseRealTime()
    ->Unit(benchmark::kMillisecond)
    ->Iterations(10);

}  // namespace
}  // namespace flashmem

BENCHMARK_MAIN();
