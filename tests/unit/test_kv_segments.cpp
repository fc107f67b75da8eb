// KvStore segment reads (one layer's K and V of a page): exact bytes for every layer on both
// backends, a damaged byte misses only its own segment, I/O faults are clean statuses, a reopened
// version-2 file keeps its segment checksums, and a version-1 file (written here by hand, as the
// old code wrote it) still opens, reads and accepts new pages.
#include <fcntl.h>
#include <gtest/gtest.h>
#include <unistd.h>
#include <xxhash.h>

#include <cstring>
#include <filesystem>

#include "../common/kv_pattern.h"
#include "kv/disk_store.h"
#include "kv/kv_store.h"
#include "util/error.h"

namespace flashmem {
namespace {

using test::FaultyFileIo;
using test::make_page;

// 4 layers x 4 tokens x kv_dim 8 x f32: 1024-byte pages of four 256-byte layer segments, so a
// slot (1024 + 4 x 8 table + 32 trailer) is one 4096-byte block.
const PageLayout kLayers = PageLayout::make(4, 4, 8, 4);
constexpr int64_t kSegments = 4;  // one per layer, as PagedKv creates its stores
constexpr int64_t kSlot = 4096;   // slot stride of kLayers pages (see above)

// Bytes of layer `layer` of page `page` as written: its K block then its V block.
std::vector<uint8_t> layer_of(int64_t page, int64_t layer) {
  const std::vector<uint8_t> whole = make_page(kLayers, page);
  const auto* at = whole.data() + kLayers.k(layer);
  return {at, at + kLayers.layer_bytes()};
}

// File offset of byte `byte` of layer `layer` of page `page` in a kLayers file.
int64_t offset_in_file(int64_t page, int64_t layer, int64_t byte) {
  return 4096 + page * kSlot + static_cast<int64_t>(kLayers.k(layer)) + byte;
}

void flip_byte_on_disk(const std::string& path, int64_t offset) {
  const int fd = ::open(path.c_str(), O_RDWR);
  ASSERT_GE(fd, 0);
  uint8_t byte = 0;
  ASSERT_EQ(::pread(fd, &byte, 1, offset), 1);
  byte ^= 0x04;
  ASSERT_EQ(::pwrite(fd, &byte, 1, offset), 1);
  ::close(fd);
}

void expect_every_layer_reads(KvStore& store, int64_t page) {
  std::vector<uint8_t> dst(store.segment_bytes());
  for (int64_t l = 0; l < kLayers.n_layers; ++l) {
    ASSERT_EQ(store.read_segment(page, l, dst.data()), StoreStatus::kOk) << "page " << page << " layer " << l;
    EXPECT_EQ(dst, layer_of(page, l)) << "page " << page << " layer " << l;
  }
}

TEST(KvSegments, SizesAreCheckedAtConstruction) {
  EXPECT_EQ(RamStore(kLayers.page_bytes(), kSegments).segment_bytes(), kLayers.layer_bytes());
  EXPECT_EQ(RamStore(kLayers.page_bytes()).segments(), 1);
  EXPECT_THROW(RamStore(kLayers.page_bytes(), 3), Error);  // 1024 is not 3 equal parts
  EXPECT_THROW(RamStore(kLayers.page_bytes(), 0), Error);
  EXPECT_THROW(RamStore(4096, KvStore::kMaxSegments * 2), Error);
  const std::string path = test::temp_kv_path("segment_sizes");
  EXPECT_THROW(DiskStore::create(path, kLayers.page_bytes(), {.segments = 3}), Error);
  EXPECT_FALSE(std::filesystem::exists(path));  // rejected before the file is created
}

TEST(KvSegments, RamStoreReadsEveryLayer) {
  RamStore store(kLayers.page_bytes(), kSegments);
  for (int p = 0; p < 3; ++p) ASSERT_EQ(store.write_page(p, make_page(kLayers, p).data()), StoreStatus::kOk);
  for (int p = 0; p < 3; ++p) expect_every_layer_reads(store, p);
  EXPECT_EQ(store.bytes_read(), 3 * kLayers.page_bytes());  // 3 pages x 4 segments
  std::vector<uint8_t> dst(store.segment_bytes());
  EXPECT_EQ(store.read_segment(3, 0, dst.data()), StoreStatus::kAbsent);
  EXPECT_THROW(store.read_segment(0, kSegments, dst.data()), Error);
  EXPECT_THROW(store.read_segment(0, -1, dst.data()), Error);
}

TEST(KvSegments, DiskStoreReadsEveryLayerWithOneReadOfItsBytes) {
  FaultyFileIo io;
  auto store = DiskStore::create(test::temp_kv_path("segments_round_trip"), kLayers.page_bytes(),
                                 {.io = &io, .segments = kSegments});
  EXPECT_EQ(store->format_version(), 2u);
  EXPECT_EQ(store->slot_stride(), uint64_t(kSlot));
  for (int p = 0; p < 5; ++p) ASSERT_EQ(store->write_page(p, make_page(kLayers, p).data()), StoreStatus::kOk);
  for (int p = 4; p >= 0; --p) {
    const int reads_before = io.reads;
    expect_every_layer_reads(*store, p);
    EXPECT_EQ(io.reads - reads_before, kSegments);  // one pread per layer
  }
  EXPECT_EQ(store->bytes_read(), 5 * kLayers.page_bytes());  // segment bytes only
  std::vector<uint8_t> page(kLayers.page_bytes());
  ASSERT_EQ(store->read_page(2, page.data()), StoreStatus::kOk);  // whole pages still read
  EXPECT_EQ(page, make_page(kLayers, 2));
  std::vector<uint8_t> dst(store->segment_bytes());
  EXPECT_EQ(store->read_segment(5, 0, dst.data()), StoreStatus::kAbsent);
  EXPECT_EQ(store->read_segment(-1, 0, dst.data()), StoreStatus::kAbsent);
  EXPECT_THROW(store->read_segment(0, kSegments, dst.data()), Error);
}

TEST(KvSegments, BitFlipInOneLayerMissesOnlyThatLayer) {
  FaultyFileIo io;
  auto store = DiskStore::create(test::temp_kv_path("segments_flip"), kLayers.page_bytes(),
                                 {.io = &io, .segments = kSegments});
  for (int p = 0; p < 3; ++p) ASSERT_EQ(store->write_page(p, make_page(kLayers, p).data()), StoreStatus::kOk);
  std::vector<uint8_t> dst(store->segment_bytes());
  // First and last byte of a layer (its K start, its V end): both inside that segment only.
  for (const int64_t byte : {int64_t{0}, static_cast<int64_t>(kLayers.layer_bytes()) - 1}) {
    io.flip_offset = offset_in_file(1, 2, byte);
    EXPECT_EQ(store->read_segment(1, 2, dst.data()), StoreStatus::kCorrupt);
    for (int64_t l : {0, 1, 3}) {
      ASSERT_EQ(store->read_segment(1, l, dst.data()), StoreStatus::kOk) << "layer " << l;
      EXPECT_EQ(dst, layer_of(1, l));
    }
    std::vector<uint8_t> page(kLayers.page_bytes());
    EXPECT_EQ(store->read_page(1, page.data()), StoreStatus::kCorrupt);
  }
  io.flip_offset = -1;
  expect_every_layer_reads(*store, 1);  // the flip was in transit, not on disk
}

TEST(KvSegments, ReadFaultsAreMisses) {
  FaultyFileIo io;
  auto store = DiskStore::create(test::temp_kv_path("segments_faults"), kLayers.page_bytes(),
                                 {.io = &io, .segments = kSegments});
  ASSERT_EQ(store->write_page(0, make_page(kLayers, 0).data()), StoreStatus::kOk);
  std::vector<uint8_t> dst(store->segment_bytes());
  io.read_errno = EIO;
  EXPECT_EQ(store->read_segment(0, 1, dst.data()), StoreStatus::kIoError);
  io.read_errno = 0;
  io.read_returns_zero = true;  // file shorter than the segment
  EXPECT_EQ(store->read_segment(0, 1, dst.data()), StoreStatus::kIoError);
  io.read_returns_zero = false;
  EXPECT_EQ(store->bytes_read(), 0u);  // failed reads do not count
  io.max_read_chunk = 7;                 // short reads are continued
  expect_every_layer_reads(*store, 0);
  EXPECT_EQ(store->bytes_read(), kLayers.page_bytes());
}

TEST(KvSegments, ReopenedFileKeepsSegmentChecksums) {
  const std::string path = test::temp_kv_path("segments_reopen");
  {
    auto store = DiskStore::create(path, kLayers.page_bytes(), {.keep_file = true, .segments = kSegments});
    for (int p : {0, 1, 3}) ASSERT_EQ(store->write_page(p, make_page(kLayers, p).data()), StoreStatus::kOk);
  }
  {
    auto store = DiskStore::open(path, kLayers.page_bytes(), {.segments = kSegments});
    EXPECT_EQ(store->format_version(), 2u);
    for (int p : {0, 1, 3}) expect_every_layer_reads(*store, p);
    EXPECT_FALSE(store->has_page(2));
    ASSERT_EQ(store->write_page(2, make_page(kLayers, 2).data()), StoreStatus::kOk);
  }
  // On disk: one bit of page 1 layer 3, and one bit of page 3's segment table (the trailer's
  // checksum covers the table, so the page is absent rather than trusted with a wrong checksum).
  flip_byte_on_disk(path, offset_in_file(1, 3, 17));
  flip_byte_on_disk(path, 4096 + 3 * kSlot + static_cast<int64_t>(kLayers.page_bytes()) + 8);
  {
    auto store = DiskStore::open(path, kLayers.page_bytes(), {.segments = kSegments});
    std::vector<uint8_t> dst(store->segment_bytes());
    EXPECT_EQ(store->read_segment(1, 3, dst.data()), StoreStatus::kCorrupt);
    for (int64_t l = 0; l < 3; ++l) {
      ASSERT_EQ(store->read_segment(1, l, dst.data()), StoreStatus::kOk);
      EXPECT_EQ(dst, layer_of(1, l));
    }
    EXPECT_FALSE(store->has_page(3));
    EXPECT_EQ(store->read_segment(3, 0, dst.data()), StoreStatus::kAbsent);
    expect_every_layer_reads(*store, 0);
    expect_every_layer_reads(*store, 2);  // written after the first reopen
    EXPECT_EQ(store->verify_all(), std::vector<int64_t>{1});
  }
  // A version-2 file opens only with its own segment count.
  EXPECT_THROW(DiskStore::open(path, kLayers.page_bytes(), {.segments = 2}), Error);
  EXPECT_THROW(DiskStore::open(path, kLayers.page_bytes()), Error);
  std::filesystem::remove(path);
}

// ---- Version 1 -----------------------------------------------------------------------------

// The version-1 writer, as the old DiskStore wrote files: 40-byte header, then per slot the page
// bytes and a 32-byte trailer at a stride of page + 32 rounded up to 4096.
void write_v1_file(const std::string& path, const PageLayout& layout, const std::vector<int64_t>& pages) {
  const uint64_t page_bytes = layout.page_bytes();
  const uint64_t stride = (page_bytes + 32 + 4095) / 4096 * 4096;
  struct {
    char magic[8] = {'F', 'M', 'K', 'V', 'D', 'S', 'K', '1'};
    uint32_t version = 1, trailer_bytes = 32;
    uint64_t page_bytes, slot_stride, checksum;
  } header;
  static_assert(sizeof(header) == 40);
  header.page_bytes = page_bytes;
  header.slot_stride = stride;
  header.checksum = XXH3_64bits(&header, 32);
  const int fd = ::open(path.c_str(), O_RDWR | O_CREAT | O_TRUNC, 0600);
  ASSERT_GE(fd, 0);
  ASSERT_EQ(::pwrite(fd, &header, sizeof(header), 0), 40);
  for (int64_t p : pages) {
    const std::vector<uint8_t> bytes = make_page(layout, p);
    const int64_t at = 4096 + p * static_cast<int64_t>(stride);
    uint64_t trailer[4] = {0x45474150564b4d46ull /* "FMKVPAGE" */, static_cast<uint64_t>(p),
                           XXH3_64bits(bytes.data(), bytes.size()), 0};
    trailer[3] = XXH3_64bits(trailer, 24);
    ASSERT_EQ(::pwrite(fd, bytes.data(), bytes.size(), at), static_cast<ssize_t>(bytes.size()));
    ASSERT_EQ(::pwrite(fd, trailer, 32, at + static_cast<int64_t>(page_bytes)), 32);
  }
  ::close(fd);
}

TEST(KvSegments, Version1FileOpensAndReadsWholePages) {
  const std::string path = test::temp_kv_path("segments_v1");
  write_v1_file(path, kLayers, {});  // header only: a 40-byte file
  {
    auto store = DiskStore::open(path, kLayers.page_bytes(), {.segments = kSegments});
    EXPECT_EQ(store->format_version(), 1u);
    EXPECT_FALSE(store->has_page(0));
  }
  write_v1_file(path, kLayers, {0, 1, 4});
  {
    FaultyFileIo io;
    auto store = DiskStore::open(path, kLayers.page_bytes(), {.io = &io, .segments = kSegments});
    EXPECT_EQ(store->format_version(), 1u);
    EXPECT_EQ(store->slot_stride(), 4096u);  // 1024 + 32, no segment table
    std::vector<uint8_t> page(kLayers.page_bytes());
    for (int p : {0, 1, 4}) {
      ASSERT_EQ(store->read_page(p, page.data()), StoreStatus::kOk);
      EXPECT_EQ(page, make_page(kLayers, p));
      expect_every_layer_reads(*store, p);  // each through a verified whole-page read
    }
    EXPECT_EQ(store->bytes_read(), 3 * (1 + kSegments) * kLayers.page_bytes());
    // No segment checksums: a flip in layer 0 makes every layer of the page miss.
    std::vector<uint8_t> dst(store->segment_bytes());
    io.flip_offset = offset_in_file(1, 0, 5);
    EXPECT_EQ(store->read_segment(1, 3, dst.data()), StoreStatus::kCorrupt);
    io.flip_offset = -1;
    io.read_errno = EIO;
    EXPECT_EQ(store->read_segment(1, 3, dst.data()), StoreStatus::kIoError);
    io.read_errno = 0;
    // New pages in a version-1 file are written as version 1.
    ASSERT_EQ(store->write_page(2, make_page(kLayers, 2).data()), StoreStatus::kOk);
  }
  {
    auto store = DiskStore::open(path, kLayers.page_bytes());  // any segment count
    EXPECT_EQ(store->format_version(), 1u);
    std::vector<uint8_t> page(kLayers.page_bytes());
    ASSERT_EQ(store->read_page(2, page.data()), StoreStatus::kOk);
    EXPECT_EQ(page, make_page(kLayers, 2));
    EXPECT_TRUE(store->verify_all().empty());
  }
  // A damaged version-1 header is still rejected.
  flip_byte_on_disk(path, 20);
  EXPECT_THROW(DiskStore::open(path, kLayers.page_bytes()), Error);
  std::filesystem::remove(path);
}

}  // namespace
}  // namespace flashmem
