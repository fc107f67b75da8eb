#include "kv/disk_store.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>
#include <xxhash.h>

#include <algorithm>
#include <array>
#include <bit>
#include <cerrno>
#include <cstring>
#include <new>

#include "util/error.h"

namespace flashmem {
namespace {

static_assert(std::endian::native == std::endian::little, "the KV file format is little-endian");

constexpr char kFileMagic[8] = {'F', 'M', 'K', 'V', 'D', 'S', 'K', '1'};
constexpr uint64_t kPageMagic = 0x45474150564b4d46ull;  // "FMKVPAGE" read as little-endian u64
constexpr uint32_t kVersion = 2;  // written; version 1 is still read (see disk_store.h)
constexpr uint64_t kBlock = 4096;  // slot alignment: page-cache page / usual filesystem block

struct FileHeader {  // version 2
  char magic[8];
  uint32_t version;
  uint32_t trailer_bytes;
  uint64_t page_bytes;
  uint64_t slot_stride;
  uint64_t segments;  // version 1 has its checksum here instead (of the 32 bytes above)
  uint64_t checksum;  // xxh3-64 of the 40 bytes above
};
static_assert(sizeof(FileHeader) == 48);
constexpr size_t kHeaderV1Bytes = offsetof(FileHeader, segments) + 8;

struct PageTrailer {
  uint64_t magic;
  int64_t page;
  uint64_t data_checksum;
  uint64_t checksum;  // xxh3-64 of the segment table before the trailer and the 24 bytes above
};
static_assert(sizeof(PageTrailer) == DiskStore::kTrailerBytes);

// A slot's record after its page bytes: [segment table][trailer], as 8-byte words.
constexpr size_t kTrailerWords = sizeof(PageTrailer) / 8;
using SlotRecord = std::array<uint64_t, KvStore::kMaxSegments + kTrailerWords>;

uint64_t hash_bytes(const void* p, size_t n) { return XXH3_64bits(p, n); }

FileHeader make_header(size_t page_bytes, uint64_t stride, int64_t segments) {
  FileHeader h{};
  std::memcpy(h.magic, kFileMagic, sizeof(kFileMagic));
  h.version = kVersion;
  h.trailer_bytes = DiskStore::kTrailerBytes;
  h.page_bytes = page_bytes;
  h.slot_stride = stride;
  h.segments = static_cast<uint64_t>(segments);
  h.checksum = hash_bytes(&h, offsetof(FileHeader, checksum));
  return h;
}

// table_segments: segment checksums per slot (0 for version 1).
uint64_t stride_for(size_t page_bytes, int64_t table_segments) {
  const uint64_t used = page_bytes + 8 * static_cast<uint64_t>(table_segments) + DiskStore::kTrailerBytes;
  return (used + kBlock - 1) / kBlock * kBlock;
}

StoreStatus status_of_errno(int error) {
  return (error == ENOSPC || error == EDQUOT) ? StoreStatus::kNoSpace : StoreStatus::kIoError;
}

class PosixFileIo final : public FileIo {
 public:
  int64_t pwrite(int fd, const void* buf, size_t n, int64_t offset) override {
    for (;;) {
      ssize_t r = ::pwrite(fd, buf, n, static_cast<off_t>(offset));
      if (r >= 0) return r;
      if (errno != EINTR) return -errno;
    }
  }
  int64_t pread(int fd, void* buf, size_t n, int64_t offset) override {
    for (;;) {
      ssize_t r = ::pread(fd, buf, n, static_cast<off_t>(offset));
      if (r >= 0) return r;
      if (errno != EINTR) return -errno;
    }
  }
};

}  // namespace

FileIo& posix_file_io() {
  static PosixFileIo io;
  return io;
}

DiskStore::DiskStore(OwnedFile file, size_t page_bytes, DiskStoreOptions options)
    : KvStore(page_bytes, options.segments),
      file_(std::move(file)),
      io_(options.io ? *options.io : posix_file_io()) {
  set_table_segments(segments_);
}

void DiskStore::set_table_segments(int64_t table_segments) {
  table_segments_ = table_segments;
  stride_ = stride_for(page_bytes_, table_segments);
}

std::unique_ptr<DiskStore> DiskStore::create(const std::string& path, size_t page_bytes,
                                             DiskStoreOptions options) {
  check_sizes(page_bytes, options.segments);  // before the file exists
  // Stale files: the KV files of processes killed before they could remove theirs.
  static const OwnedName kKvFileName{"flashmem-kv-", ".pages",
                                     std::string_view(kFileMagic, sizeof(kFileMagic))};
  // From here the store owns the file (and removes it unless keep_file).
  std::unique_ptr<DiskStore> store(
      new DiskStore(OwnedFile::create_at(path, kKvFileName, "KV store file"), page_bytes, options));
  const FileHeader header = make_header(page_bytes, store->stride_, store->segments_);
  const StoreStatus status = store->write_all(&header, sizeof(header), 0);
  if (status != StoreStatus::kOk)
    fail("cannot write KV store header to '{}': {}", store->path(), to_string(status));
  if (options.keep_file) store->file_.keep();
  return store;
}

std::unique_ptr<DiskStore> DiskStore::open(const std::string& path, size_t page_bytes,
                                           DiskStoreOptions options) {
  check_sizes(page_bytes, options.segments);  // before fd is opened (the constructor checks too)
  int fd = ::open(path.c_str(), O_RDWR | O_CLOEXEC);
  if (fd < 0) fail("cannot open KV store file '{}': {}", path, std::strerror(errno));
  struct stat st{};
  if (::fstat(fd, &st) != 0) {
    const int error = errno;
    ::close(fd);
    fail("cannot stat KV store file '{}': {}", path, std::strerror(error));
  }
  // Opened, not created: never removed, even when rejected below (it belongs to its writer).
  std::unique_ptr<DiskStore> store(new DiskStore(OwnedFile::adopt(fd, path), page_bytes, options));
  FileHeader header{};
  const auto file_size = static_cast<uint64_t>(st.st_size);
  // A version-1 file without pages is only kHeaderV1Bytes long.
  const size_t header_bytes = std::min<uint64_t>(file_size, sizeof(header));
  if (header_bytes < kHeaderV1Bytes ||
      store->read_all(&header, header_bytes, 0) != StoreStatus::kOk)
    fail("KV store file '{}' is too short or unreadable", path);
  if (std::memcmp(header.magic, kFileMagic, sizeof(kFileMagic)) != 0)
    fail("'{}' is not a flashmem KV store file (bad magic)", path);
  if (header.version == 1) {
    if (header.segments != hash_bytes(&header, offsetof(FileHeader, segments)))  // v1 checksum
      fail("KV store file '{}': header checksum mismatch", path);
    store->set_table_segments(0);
  } else if (header.version == 2) {
    if (header_bytes < sizeof(header) ||
        header.checksum != hash_bytes(&header, offsetof(FileHeader, checksum)))
      fail("KV store file '{}': header checksum mismatch", path);
    if (header.segments != static_cast<uint64_t>(store->segments_))
      fail("KV store file '{}' holds pages in {} segments, expected {}", path, header.segments,
           store->segments_);
  } else {
    fail("KV store file '{}': unsupported version {}", path, header.version);
  }
  if (header.trailer_bytes != kTrailerBytes)
    fail("KV store file '{}': unsupported trailer size {}", path, header.trailer_bytes);
  if (header.page_bytes != page_bytes || header.slot_stride != store->stride_)
    fail("KV store file '{}' holds pages of {} bytes, expected {}", path, header.page_bytes,
         page_bytes);
  store->load_trailers(file_size);
  return store;
}

void DiskStore::load_trailers(uint64_t file_size) {
  if (file_size <= kHeaderBytes) return;
  const uint64_t n_slots = (file_size - kHeaderBytes + stride_ - 1) / stride_;
  const auto table = static_cast<size_t>(table_segments_);
  std::lock_guard lock(mutex_);
  entries_.assign(n_slots, Entry{});
  segment_checksums_.assign(n_slots * table, 0);
  for (uint64_t slot = 0; slot < n_slots; ++slot) {
    SlotRecord record{};  // [table][trailer]
    const uint64_t at = slot_offset(static_cast<int64_t>(slot)) + page_bytes_;
    if (at + record_bytes() > file_size || read_all(record.data(), record_bytes(), at) != StoreStatus::kOk)
      continue;
    PageTrailer t{};
    std::memcpy(&t, record.data() + table, sizeof(t));
    if (t.magic != kPageMagic || t.page != static_cast<int64_t>(slot) ||
        t.checksum != hash_bytes(record.data(), record_bytes() - sizeof(t.checksum)))
      continue;  // never written, torn, or damaged: absent
    entries_[slot] = Entry{PageState::kPresent, t.data_checksum};
    std::copy_n(record.data(), table, segment_checksums_.begin() + static_cast<ptrdiff_t>(slot * table));
  }
}

StoreStatus DiskStore::write_all(const void* buf, size_t n, uint64_t offset) {
  const auto* p = static_cast<const uint8_t*>(buf);
  while (n > 0) {
    const int64_t r = io_.pwrite(file_.fd(), p, n, static_cast<int64_t>(offset));
    if (r < 0) return status_of_errno(static_cast<int>(-r));
    if (r == 0 || static_cast<uint64_t>(r) > n) return StoreStatus::kIoError;  // no progress
    p += r;
    n -= static_cast<size_t>(r);
    offset += static_cast<uint64_t>(r);
  }
  return StoreStatus::kOk;
}

StoreStatus DiskStore::read_all(void* buf, size_t n, uint64_t offset) {
  auto* p = static_cast<uint8_t*>(buf);
  while (n > 0) {
    const int64_t r = io_.pread(file_.fd(), p, n, static_cast<int64_t>(offset));
    if (r < 0) return StoreStatus::kIoError;
    if (r == 0 || static_cast<uint64_t>(r) > n) return StoreStatus::kIoError;  // file too short
    p += r;
    n -= static_cast<size_t>(r);
    offset += static_cast<uint64_t>(r);
  }
  return StoreStatus::kOk;
}

StoreStatus DiskStore::write_page(int64_t page, const uint8_t* bytes) {
  check_page_index(page);
  const auto index = static_cast<size_t>(page);
  {
    std::lock_guard lock(mutex_);
    if (index >= entries_.size()) {
      try {
        segment_checksums_.resize((index + 1) * static_cast<size_t>(table_segments_));
        entries_.resize(index + 1);
      } catch (const std::bad_alloc&) {
        return StoreStatus::kNoSpace;  // table for an absurd page index: out of memory
      }
    }
    if (entries_[index].state != PageState::kAbsent) fail("KV page {} written twice", page);
    entries_[index].state = PageState::kWriting;
  }
  const uint64_t checksum = hash_bytes(bytes, page_bytes_);
  const auto table = static_cast<size_t>(table_segments_);
  SlotRecord record{};  // [table][trailer]
  for (size_t s = 0; s < table; ++s) record[s] = hash_bytes(bytes + s * segment_bytes(), segment_bytes());
  const PageTrailer trailer{kPageMagic, page, checksum, 0};  // checksum: set below
  std::memcpy(record.data() + table, &trailer, sizeof(trailer));
  record[table + kTrailerWords - 1] = hash_bytes(record.data(), record_bytes() - sizeof(trailer.checksum));
  // Data first, table + trailer second: a crash or error in between leaves no valid trailer
  // (absent).
  StoreStatus status = write_all(bytes, page_bytes_, slot_offset(page));
  if (status == StoreStatus::kOk)
    status = write_all(record.data(), record_bytes(), slot_offset(page) + page_bytes_);
  std::lock_guard lock(mutex_);
  if (status != StoreStatus::kOk) {
    entries_[index].state = PageState::kAbsent;
    return status;
  }
  entries_[index] = Entry{PageState::kPresent, checksum};
  std::copy_n(record.data(), table, segment_checksums_.begin() + static_cast<ptrdiff_t>(index * table));
  bytes_written_.fetch_add(page_bytes_, std::memory_order_relaxed);
  return StoreStatus::kOk;
}

StoreStatus DiskStore::read_page(int64_t page, uint8_t* dst) {
  uint64_t expected = 0;
  {
    std::lock_guard lock(mutex_);
    if (page < 0 || static_cast<size_t>(page) >= entries_.size() ||
        entries_[page].state != PageState::kPresent)
      return StoreStatus::kAbsent;
    expected = entries_[page].checksum;
  }
  const StoreStatus status = read_all(dst, page_bytes_, slot_offset(page));
  if (status != StoreStatus::kOk) return status;
  if (hash_bytes(dst, page_bytes_) != expected) return StoreStatus::kCorrupt;
  bytes_read_.fetch_add(page_bytes_, std::memory_order_relaxed);
  return StoreStatus::kOk;
}

StoreStatus DiskStore::read_segment(int64_t page, int64_t segment, uint8_t* dst) {
  check_segment_index(segment);
  if (table_segments_ == 0) return read_segment_via_page(page, segment, dst);
  const size_t n = segment_bytes();
  uint64_t expected = 0;
  {
    std::lock_guard lock(mutex_);
    if (page < 0 || static_cast<size_t>(page) >= entries_.size() ||
        entries_[page].state != PageState::kPresent)
      return StoreStatus::kAbsent;
    expected = segment_checksums_[static_cast<size_t>(page * table_segments_ + segment)];
  }
  const StoreStatus status = read_all(dst, n, slot_offset(page) + static_cast<uint64_t>(segment) * n);
  if (status != StoreStatus::kOk) return status;
  if (hash_bytes(dst, n) != expected) return StoreStatus::kCorrupt;
  bytes_read_.fetch_add(n, std::memory_order_relaxed);
  return StoreStatus::kOk;
}

// No cache of the last page read: quest reads layer by layer (each layer's chosen pages, then the
// next layer's), so consecutive segment reads are rarely of one page (measured on stories260K,
// quest:3 over 200 steps: a last-page cache saves 4% of page reads, a cache of every page of the
// step 36%, at up to n_layers * K pages of memory). And no runtime path reads a version-1 file:
// PagedKv creates version-2 files; only DiskStore::open of an old kept file reaches this.
StoreStatus DiskStore::read_segment_via_page(int64_t page, int64_t segment, uint8_t* dst) {
  AlignedBytes whole = allocate_aligned_bytes(page_bytes_);  // [page_bytes]
  if (!whole) return StoreStatus::kIoError;  // cannot stage the page: a miss like a failed read
  const StoreStatus status = read_page(page, whole.get());
  if (status != StoreStatus::kOk) return status;
  const size_t n = segment_bytes();
  std::memcpy(dst, whole.get() + static_cast<size_t>(segment) * n, n);
  return StoreStatus::kOk;
}

bool DiskStore::has_page(int64_t page) const {
  std::lock_guard lock(mutex_);
  return page >= 0 && static_cast<size_t>(page) < entries_.size() &&
         entries_[page].state == PageState::kPresent;
}

std::optional<uint64_t> DiskStore::page_digest(int64_t page) const {
  if (!has_page(page)) return std::nullopt;
  std::lock_guard lock(mutex_);
  return entries_[static_cast<size_t>(page)].checksum;
}

std::vector<int64_t> DiskStore::verify_all() {
  std::vector<int64_t> present;
  {
    std::lock_guard lock(mutex_);
    for (size_t i = 0; i < entries_.size(); ++i)
      if (entries_[i].state == PageState::kPresent) present.push_back(static_cast<int64_t>(i));
  }
  std::vector<int64_t> bad;
  AlignedBytes scratch = allocate_aligned_bytes(page_bytes_);  // [page_bytes]
  if (!scratch) fail("out of memory verifying KV store '{}'", path());
  for (int64_t page : present)
    if (read_page(page, scratch.get()) != StoreStatus::kOk) bad.push_back(page);
  return bad;
}

StoreStatus DiskStore::sync() {
  return ::fdatasync(file_.fd()) == 0 ? StoreStatus::kOk : StoreStatus::kIoError;
}

}  // namespace flashmem
