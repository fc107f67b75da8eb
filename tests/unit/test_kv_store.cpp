// KvStore backends: RAM and disk round trips, reopen + checksum verification, injected faults
// (ENOSPC, EIO, short transfers, bit flips) -> clean status and never a wrong byte served.
#include <fcntl.h>
#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <random>

#include "../common/kv_pattern.h"
#include "kv/disk_store.h"
#include "kv/kv_store.h"
#include "util/error.h"

namespace flashmem {
namespace {

using test::FaultyFileIo;
using test::make_page;

// 2 layers x 4 tokens x kv_dim 8 x f32: 512-byte pages, small enough to write hundreds.
const PageLayout kSmall = PageLayout::make(2, 4, 8, 4);

TEST(KvPageLayout, OffsetsFollowLayerKvTokenDimOrder) {
  // The 125M model's page (DESIGN: 12 layers, 64 tokens, kv_dim 256, f16) is 786,432 bytes.
  const PageLayout l = PageLayout::make(12, 64, 256, 2);
  EXPECT_EQ(l.page_bytes(), 786432u);
  EXPECT_EQ(l.row_bytes(), 512u);
  EXPECT_EQ(l.k(0), 0u);
  EXPECT_EQ(l.v(0), 64u * 512);
  EXPECT_EQ(l.k(1), 2u * 64 * 512);
  EXPECT_EQ(l.v_row(11, 63), l.page_bytes() - 512);
  EXPECT_EQ(l.page_of(127), 1);
  EXPECT_EQ(l.slot_of(127), 63);
  EXPECT_THROW(PageLayout::make(0, 64, 256, 2), Error);
  EXPECT_THROW(PageLayout::make(12, 64, -1, 2), Error);
  EXPECT_THROW(PageLayout::make(1 << 20, 1 << 20, 1 << 20, 2), Error);  // > 1 GiB
}

// MLA pages (values_in_keys): one [page_tokens, kv_dim] block per layer, the V block being the K
// block. DeepSeek-V3's page: 61 layers × 64 tokens × 576 f16 values = 4.3 MiB, half what a K and
// V page of that row width would be.
TEST(KvPageLayout, ValuesInKeysPagesHoldOneBlockPerLayer) {
  const PageLayout l = PageLayout::make(61, 64, 576, 2, 1, true);
  EXPECT_EQ(l.page_bytes(), 61u * 64 * 576 * 2);
  EXPECT_EQ(l.layer_bytes(), 64u * 576 * 2);
  EXPECT_EQ(l.v(3), l.k(3));
  EXPECT_EQ(l.v_offset(), 0u);
  EXPECT_EQ(l.k(1), l.layer_bytes());
  EXPECT_EQ(l.v_row(60, 63), l.page_bytes() - 1152);
  EXPECT_EQ(PageLayout::make(61, 64, 576, 2).page_bytes(), 2 * l.page_bytes());
}

void round_trip(KvStore& store, int n_pages) {
  for (int p = 0; p < n_pages; ++p)
    ASSERT_EQ(store.write_page(p, make_page(kSmall, p).data()), StoreStatus::kOk);
  std::vector<uint8_t> dst(kSmall.page_bytes());
  for (int p = n_pages - 1; p >= 0; --p) {
    ASSERT_TRUE(store.has_page(p));
    ASSERT_EQ(store.read_page(p, dst.data()), StoreStatus::kOk);
    ASSERT_EQ(dst, make_page(kSmall, p)) << "page " << p;
  }
  EXPECT_FALSE(store.has_page(n_pages));
  EXPECT_EQ(store.read_page(n_pages, dst.data()), StoreStatus::kAbsent);
  EXPECT_EQ(store.read_page(-1, dst.data()), StoreStatus::kAbsent);
  EXPECT_EQ(store.bytes_written(), uint64_t(n_pages) * kSmall.page_bytes());
  EXPECT_EQ(store.bytes_read(), uint64_t(n_pages) * kSmall.page_bytes());
  // Pages are immutable; a bad index is a caller bug.
  EXPECT_THROW(store.write_page(0, dst.data()), Error);
  EXPECT_THROW(store.write_page(-3, dst.data()), Error);
}

TEST(KvRamStore, RoundTripAndStablePointers) {
  RamStore store(kSmall.page_bytes());
  ASSERT_EQ(store.write_page(0, make_page(kSmall, 0).data()), StoreStatus::kOk);
  const uint8_t* first = store.page_in_place(0);
  RamStore store2(kSmall.page_bytes());
  round_trip(store2, 40);
  // Sparse writes leave holes that read as absent.
  ASSERT_EQ(store.write_page(1000, make_page(kSmall, 1000).data()), StoreStatus::kOk);
  EXPECT_FALSE(store.has_page(999));
  EXPECT_EQ(store.page_in_place(0), first);  // table growth does not move pages
  EXPECT_EQ(reinterpret_cast<uintptr_t>(first) % 64, 0u);
  EXPECT_EQ(std::memcmp(first, make_page(kSmall, 0).data(), kSmall.page_bytes()), 0);
}

TEST(KvDiskStore, RoundTripAndRemovalOnDestruction) {
  const std::string path = test::temp_kv_path("round_trip");
  {
    auto store = DiskStore::create(path, kSmall.page_bytes());
    EXPECT_EQ(store->slot_stride(), 4096u);  // 512 + 32 trailer rounded to a block
    round_trip(*store, 40);
    EXPECT_TRUE(store->verify_all().empty());
    EXPECT_TRUE(std::filesystem::exists(path));
  }
  EXPECT_FALSE(std::filesystem::exists(path));
}

TEST(KvDiskStore, ReopenVerifiesEveryPage) {
  const std::string path = test::temp_kv_path("reopen");
  // Page 1 MB + 1: the stride rounding and trailer placement work for odd sizes too.
  const size_t odd_bytes = (1 << 20) + 1;
  std::vector<uint8_t> big(odd_bytes);
  test::fill_row(big.data(), big.size(), 7, 0, 0);
  {
    auto store = DiskStore::create(path, kSmall.page_bytes(), {.keep_file = true});
    for (int p : {0, 1, 2, 5}) ASSERT_EQ(store->write_page(p, make_page(kSmall, p).data()), StoreStatus::kOk);
    EXPECT_EQ(store->sync(), StoreStatus::kOk);
  }
  {
    auto store = DiskStore::open(path, kSmall.page_bytes());
    std::vector<uint8_t> dst(kSmall.page_bytes());
    for (int p : {0, 1, 2, 5}) {
      ASSERT_TRUE(store->has_page(p));
      ASSERT_EQ(store->read_page(p, dst.data()), StoreStatus::kOk);
      EXPECT_EQ(dst, make_page(kSmall, p));
    }
    for (int p : {3, 4, 6}) EXPECT_FALSE(store->has_page(p));  // holes
    EXPECT_TRUE(store->verify_all().empty());
    // Reopened stores accept the missing pages.
    ASSERT_EQ(store->write_page(3, make_page(kSmall, 3).data()), StoreStatus::kOk);
  }
  // Flip one bit of page 2's data and tear page 5's trailer behind the store's back.
  {
    int fd = ::open(path.c_str(), O_RDWR);
    ASSERT_GE(fd, 0);
    uint8_t byte = 0;
    const off_t data_at = 4096 + 2 * 4096 + 100;
    ASSERT_EQ(::pread(fd, &byte, 1, data_at), 1);
    byte ^= 0x01;
    ASSERT_EQ(::pwrite(fd, &byte, 1, data_at), 1);
    const off_t trailer_at = 4096 + 5 * 4096 + kSmall.page_bytes() + 10;
    ASSERT_EQ(::pwrite(fd, &byte, 1, trailer_at), 1);
    ::close(fd);
  }
  {
    auto store = DiskStore::open(path, kSmall.page_bytes());
    std::vector<uint8_t> dst(kSmall.page_bytes());
    EXPECT_EQ(store->read_page(2, dst.data()), StoreStatus::kCorrupt);
    EXPECT_FALSE(store->has_page(5));  // torn trailer: absent, not trusted
    EXPECT_EQ(store->read_page(5, dst.data()), StoreStatus::kAbsent);
    EXPECT_EQ(store->verify_all(), std::vector<int64_t>{2});
    ASSERT_EQ(store->read_page(3, dst.data()), StoreStatus::kOk);
    EXPECT_EQ(dst, make_page(kSmall, 3));
  }
  // A file for another page size, a truncated header, a foreign file: rejected with Error.
  EXPECT_THROW(DiskStore::open(path, kSmall.page_bytes() * 2), Error);
  std::filesystem::resize_file(path, 20);
  EXPECT_THROW(DiskStore::open(path, kSmall.page_bytes()), Error);
  std::filesystem::remove(path);
  EXPECT_THROW(DiskStore::open(path, kSmall.page_bytes()), Error);
  EXPECT_THROW(DiskStore::create("/nonexistent-dir/x.kv", kSmall.page_bytes()), Error);
  {
    auto store = DiskStore::create(path, odd_bytes, {.keep_file = true});
    ASSERT_EQ(store->write_page(1, big.data()), StoreStatus::kOk);
  }
  auto store = DiskStore::open(path, odd_bytes);
  std::vector<uint8_t> dst(odd_bytes);
  ASSERT_EQ(store->read_page(1, dst.data()), StoreStatus::kOk);
  EXPECT_EQ(dst, big);
  std::filesystem::remove(path);
}

TEST(KvDiskStore, WriteFaultsAreCleanStatuses) {
  FaultyFileIo io;
  auto store = DiskStore::create(test::temp_kv_path("write_faults"), kSmall.page_bytes(), {.io = &io});
  const auto page = make_page(kSmall, 0);
  std::vector<uint8_t> dst(kSmall.page_bytes());

  io.write_errno = ENOSPC;
  EXPECT_EQ(store->write_page(0, page.data()), StoreStatus::kNoSpace);
  EXPECT_FALSE(store->has_page(0));
  EXPECT_EQ(store->read_page(0, dst.data()), StoreStatus::kAbsent);
  io.write_errno = EIO;
  EXPECT_EQ(store->write_page(0, page.data()), StoreStatus::kIoError);
  // Short writes that make progress are continued; the data then fails on the trailer.
  io.write_errno = ENOSPC;
  io.write_fail_after = 3;
  io.max_write_chunk = 100;
  EXPECT_EQ(store->write_page(0, page.data()), StoreStatus::kNoSpace);  // 300 of 512 bytes
  EXPECT_FALSE(store->has_page(0));
  io.write_fail_after = 6;  // 512 data bytes take 6 calls; the trailer write fails
  EXPECT_EQ(store->write_page(0, page.data()), StoreStatus::kNoSpace);
  EXPECT_FALSE(store->has_page(0));
  io.write_errno = 0;
  io.write_returns_zero = true;  // no progress at all
  EXPECT_EQ(store->write_page(0, page.data()), StoreStatus::kIoError);
  io.write_returns_zero = false;
  // Space freed: the same page can now be written, in 100-byte pieces.
  ASSERT_EQ(store->write_page(0, page.data()), StoreStatus::kOk);
  ASSERT_EQ(store->read_page(0, dst.data()), StoreStatus::kOk);
  EXPECT_EQ(dst, page);
  EXPECT_EQ(store->bytes_written(), kSmall.page_bytes());
}

TEST(KvDiskStore, ReadFaultsAreMisses) {
  FaultyFileIo io;
  auto store = DiskStore::create(test::temp_kv_path("read_faults"), kSmall.page_bytes(), {.io = &io});
  for (int p = 0; p < 4; ++p) ASSERT_EQ(store->write_page(p, make_page(kSmall, p).data()), StoreStatus::kOk);
  std::vector<uint8_t> dst(kSmall.page_bytes());
  io.read_errno = EIO;
  EXPECT_EQ(store->read_page(1, dst.data()), StoreStatus::kIoError);
  io.read_errno = 0;
  io.read_returns_zero = true;  // file shorter than the slot
  EXPECT_EQ(store->read_page(1, dst.data()), StoreStatus::kIoError);
  io.read_returns_zero = false;
  io.flip_offset = 4096 + 1 * 4096 + 511;  // last data byte of page 1
  EXPECT_EQ(store->read_page(1, dst.data()), StoreStatus::kCorrupt);
  ASSERT_EQ(store->read_page(2, dst.data()), StoreStatus::kOk);  // other pages unaffected
  EXPECT_EQ(dst, make_page(kSmall, 2));
  io.flip_offset = -1;
  io.max_read_chunk = 7;  // short reads are continued
  ASSERT_EQ(store->read_page(1, dst.data()), StoreStatus::kOk);
  EXPECT_EQ(dst, make_page(kSmall, 1));
  EXPECT_EQ(store->bytes_read(), 2 * kSmall.page_bytes());  // only successful reads count
}

// Random faults on every call (seeded): every kOk read returns exactly the written bytes, every
// failed write leaves the page absent, and nothing throws.
TEST(KvDiskStore, RandomFaultScheduleNeverServesWrongBytes) {
  FaultyFileIo io;
  auto store = DiskStore::create(test::temp_kv_path("random_faults"), kSmall.page_bytes(), {.io = &io});
  std::mt19937_64 rng(20240611);
  std::vector<uint8_t> dst(kSmall.page_bytes());
  int ok_reads = 0, misses = 0;
  for (int step = 0; step < 2000; ++step) {
    io = FaultyFileIo{};
    const int fault = static_cast<int>(rng() % 6);
    if (fault == 1) {
      io.write_errno = (rng() & 1) ? ENOSPC : EIO;
      io.write_fail_after = static_cast<int>(rng() % 4);
    }
    if (fault == 2) {
      io.max_write_chunk = 1 + rng() % 600;
      io.max_read_chunk = 1 + rng() % 600;
    }
    if (fault == 3) io.read_errno = EIO;
    if (fault == 4) io.flip_offset = static_cast<int64_t>(4096 + (rng() % 64) * 4096 + rng() % 512);
    if (fault == 5) io.read_returns_zero = true;
    const int64_t p = static_cast<int64_t>(rng() % 64);
    if (!store->has_page(p)) {
      const StoreStatus s = store->write_page(p, make_page(kSmall, p).data());
      EXPECT_EQ(store->has_page(p), s == StoreStatus::kOk);
    } else if (store->read_page(p, dst.data()) == StoreStatus::kOk) {
      ASSERT_EQ(dst, make_page(kSmall, p)) << "step " << step;
      ++ok_reads;
    } else {
      ++misses;
    }
  }
  EXPECT_GT(ok_reads, 100);
  EXPECT_GT(misses, 50);
}

}  // namespace
}  // namespace flashmem
