#include "kv/disk_store.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>
#include <xxhash.h>

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
constexpr uint32_t kVersion = 1;
constexpr uint64_t kBlock = 4096;  // slot alignment: page-cache page / usual filesystem block

struct FileHeader {
  char magic[8];
  uint32_t version;
  uint32_t trailer_bytes;
  uint64_t page_bytes;
  uint64_t slot_stride;
  uint64_t checksum;  // xxh3-64 of the 32 bytes above
};
static_assert(sizeof(FileHeader) == 40);

struct PageTrailer {
  uint64_t magic;
  int64_t page;
  uint64_t data_checksum;
  uint64_t checksum;  // xxh3-64 of the 24 bytes above
};
static_assert(sizeof(PageTrailer) == DiskStore::kTrailerBytes);

uint64_t hash_bytes(const void* p, size_t n) { return XXH3_64bits(p, n); }

FileHeader make_header(size_t page_bytes, uint64_t stride) {
  FileHeader h{};
  std::memcpy(h.magic, kFileMagic, sizeof(kFileMagic));
  h.version = kVersion;
  h.trailer_bytes = DiskStore::kTrailerBytes;
  h.page_bytes = page_bytes;
  h.slot_stride = stride;
  h.checksum = hash_bytes(&h, offsetof(FileHeader, checksum));
  return h;
}

uint64_t stride_for(size_t page_bytes) {
  return (page_bytes + DiskStore::kTrailerBytes + kBlock - 1) / kBlock * kBlock;
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

DiskStore::DiskStore(std::string path, int fd, size_t page_bytes, DiskStoreOptions options)
    : KvStore(page_bytes),
      path_(std::move(path)),
      fd_(fd),
      keep_file_(options.keep_file),
      io_(options.io ? *options.io : posix_file_io()),
      stride_(stride_for(page_bytes)) {}

DiskStore::~DiskStore() {
  ::close(fd_);
  if (!keep_file_) ::unlink(path_.c_str());
}

std::unique_ptr<DiskStore> DiskStore::create(const std::string& path, size_t page_bytes,
                                             DiskStoreOptions options) {
  if (page_bytes < 1 || page_bytes > PageLayout::kMaxPageBytes)
    fail("KV store page size {} outside [1, {}]", page_bytes, PageLayout::kMaxPageBytes);
  int fd = ::open(path.c_str(), O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
  if (fd < 0) fail("cannot create KV store file '{}': {}", path, std::strerror(errno));
  // From here the store owns fd (and removes the file unless keep_file).
  std::unique_ptr<DiskStore> store(new DiskStore(path, fd, page_bytes, options));
  const FileHeader header = make_header(page_bytes, store->stride_);
  const StoreStatus status = store->write_all(&header, sizeof(header), 0);
  if (status != StoreStatus::kOk)
    fail("cannot write KV store header to '{}': {}", path, to_string(status));
  return store;
}

std::unique_ptr<DiskStore> DiskStore::open(const std::string& path, size_t page_bytes,
                                           DiskStoreOptions options) {
  int fd = ::open(path.c_str(), O_RDWR | O_CLOEXEC);
  if (fd < 0) fail("cannot open KV store file '{}': {}", path, std::strerror(errno));
  struct stat st{};
  if (::fstat(fd, &st) != 0) {
    const int error = errno;
    ::close(fd);
    fail("cannot stat KV store file '{}': {}", path, std::strerror(error));
  }
  // A rejected file is never removed: it belongs to whoever wrote it.
  options.keep_file = true;
  std::unique_ptr<DiskStore> store(new DiskStore(path, fd, page_bytes, options));
  FileHeader header{};
  const auto file_size = static_cast<uint64_t>(st.st_size);
  if (file_size < sizeof(header) ||
      store->read_all(&header, sizeof(header), 0) != StoreStatus::kOk)
    fail("KV store file '{}' is too short or unreadable", path);
  if (std::memcmp(header.magic, kFileMagic, sizeof(kFileMagic)) != 0)
    fail("'{}' is not a flashmem KV store file (bad magic)", path);
  if (header.checksum != hash_bytes(&header, offsetof(FileHeader, checksum)))
    fail("KV store file '{}': header checksum mismatch", path);
  if (header.version != kVersion || header.trailer_bytes != kTrailerBytes)
    fail("KV store file '{}': unsupported version {}", path, header.version);
  if (header.page_bytes != page_bytes || header.slot_stride != store->stride_)
    fail("KV store file '{}' holds pages of {} bytes, expected {}", path, header.page_bytes,
         page_bytes);
  store->load_trailers(file_size);
  return store;
}

void DiskStore::load_trailers(uint64_t file_size) {
  if (file_size <= kHeaderBytes) return;
  const uint64_t n_slots = (file_size - kHeaderBytes + stride_ - 1) / stride_;
  std::lock_guard lock(mutex_);
  entries_.assign(n_slots, Entry{});
  for (uint64_t slot = 0; slot < n_slots; ++slot) {
    PageTrailer t{};
    const uint64_t at = slot_offset(static_cast<int64_t>(slot)) + page_bytes_;
    if (at + sizeof(t) > file_size || read_all(&t, sizeof(t), at) != StoreStatus::kOk) continue;
    if (t.magic != kPageMagic || t.page != static_cast<int64_t>(slot) ||
        t.checksum != hash_bytes(&t, offsetof(PageTrailer, checksum)))
      continue;  // never written, torn, or damaged: absent
    entries_[slot] = Entry{PageState::kPresent, t.data_checksum};
  }
}

StoreStatus DiskStore::write_all(const void* buf, size_t n, uint64_t offset) {
  const auto* p = static_cast<const uint8_t*>(buf);
  while (n > 0) {
    const int64_t r = io_.pwrite(fd_, p, n, static_cast<int64_t>(offset));
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
    const int64_t r = io_.pread(fd_, p, n, static_cast<int64_t>(offset));
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
        entries_.resize(index + 1);
      } catch (const std::bad_alloc&) {
        return StoreStatus::kNoSpace;  // table for an absurd page index: out of memory
      }
    }
    if (entries_[index].state != PageState::kAbsent) fail("KV page {} written twice", page);
    entries_[index].state = PageState::kWriting;
  }
  const uint64_t checksum = hash_bytes(bytes, page_bytes_);
  PageTrailer trailer{kPageMagic, page, checksum, 0};
  trailer.checksum = hash_bytes(&trailer, offsetof(PageTrailer, checksum));
  // Data first, trailer second: a crash or error in between leaves no valid trailer (absent).
  StoreStatus status = write_all(bytes, page_bytes_, slot_offset(page));
  if (status == StoreStatus::kOk)
    status = write_all(&trailer, sizeof(trailer), slot_offset(page) + page_bytes_);
  std::lock_guard lock(mutex_);
  if (status != StoreStatus::kOk) {
    entries_[index].state = PageState::kAbsent;
    return status;
  }
  entries_[index] = Entry{PageState::kPresent, checksum};
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

bool DiskStore::has_page(int64_t page) const {
  std::lock_guard lock(mutex_);
  return page >= 0 && static_cast<size_t>(page) < entries_.size() &&
         entries_[page].state == PageState::kPresent;
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
  if (!scratch) fail("out of memory verifying KV store '{}'", path_);
  for (int64_t page : present)
    if (read_page(page, scratch.get()) != StoreStatus::kOk) bad.push_back(page);
  return bad;
}

StoreStatus DiskStore::sync() {
  return ::fdatasync(fd_) == 0 ? StoreStatus::kOk : StoreStatus::kIoError;
}

}  // namespace flashmem
