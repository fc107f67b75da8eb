// DiskStore: the slow KV tier in a file (DESIGN.md `--kv-store disk:PATH`), one file per sequence.
//
// File layout (little-endian):
//   [0, 4096)                     header: magic "FMKVDSK1", version, trailer bytes, page bytes,
//                                 slot stride, xxh3-64 of the preceding header bytes
//   slot i at 4096 + i * stride:  [page bytes][32-byte trailer][hole up to stride]
//   trailer:                      magic "FMKVPAGE", page index, xxh3-64 of the page bytes,
//                                 xxh3-64 of the trailer's first 24 bytes
// The stride is page_bytes + 32 rounded up to 4096 (the page-cache page and the usual block size),
// so every slot's data starts block-aligned. Pages are written once (data, then trailer): a slot
// whose trailer is missing or torn is an absent page after a reopen, and every read verifies the
// page bytes against the checksum kept in memory, so a flipped bit on disk is a miss, not data.
#pragma once
#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "kv/kv_store.h"

namespace flashmem {

// The positional I/O calls DiskStore makes, replaceable so tests can inject ENOSPC, EIO, short
// transfers and bit flips. Same contract as POSIX pread/pwrite, except errors are returned as
// -errno instead of -1 + errno: returns bytes transferred (>= 0, possibly short) or -errno.
class FileIo {
 public:
  virtual ~FileIo() = default;
  virtual int64_t pwrite(int fd, const void* buf, size_t n, int64_t offset) = 0;
  virtual int64_t pread(int fd, void* buf, size_t n, int64_t offset) = 0;
};

// The real system calls (EINTR is retried inside).
FileIo& posix_file_io();

struct DiskStoreOptions {
  bool keep_file = false;  // false: the file is removed when the store is destroyed
  FileIo* io = nullptr;    // nullptr: posix_file_io(); otherwise must outlive the store
};

class DiskStore final : public KvStore {
 public:
  // Creates (or truncates) `path` for pages of page_bytes and writes its header. Throws Error if
  // the file cannot be created or the header cannot be written (the caller may fall back to RAM).
  static std::unique_ptr<DiskStore> create(const std::string& path, size_t page_bytes,
                                           DiskStoreOptions options = {});
  // Opens a file written by a store with keep_file: validates the header (its page bytes must
  // equal page_bytes) and loads the checksum of every slot whose trailer is intact; slots with a
  // missing or torn trailer are absent. Throws Error for a missing file or a bad header.
  static std::unique_ptr<DiskStore> open(const std::string& path, size_t page_bytes,
                                         DiskStoreOptions options = {});
  ~DiskStore() override;

  // KvStore contract. Writes: ENOSPC/EDQUOT -> kNoSpace, other errors -> kIoError (the page stays
  // absent); short writes are continued. Reads: absent -> kAbsent, I/O error or short file ->
  // kIoError, checksum mismatch -> kCorrupt.
  StoreStatus write_page(int64_t page, const uint8_t* bytes) override;
  StoreStatus read_page(int64_t page, uint8_t* dst) override;
  bool has_page(int64_t page) const override;

  // Re-reads every present page and returns those that fail verification (corrupt or unreadable),
  // in page order. Costs one full read of the file.
  std::vector<int64_t> verify_all();
  // fdatasync: makes written pages durable (only needed with keep_file). kIoError on failure.
  StoreStatus sync();

  const std::string& path() const { return path_; }
  uint64_t slot_stride() const { return stride_; }

  static constexpr uint64_t kHeaderBytes = 4096;  // one block, keeps slot 0 block-aligned
  static constexpr uint64_t kTrailerBytes = 32;

 private:
  struct Entry {
    PageState state = PageState::kAbsent;
    uint64_t checksum = 0;  // xxh3-64 of the page bytes, valid when kPresent
  };

  DiskStore(std::string path, int fd, size_t page_bytes, DiskStoreOptions options);
  uint64_t slot_offset(int64_t page) const { return kHeaderBytes + static_cast<uint64_t>(page) * stride_; }
  // Full-length positional transfers through io_; Ok, kNoSpace or kIoError.
  StoreStatus write_all(const void* buf, size_t n, uint64_t offset);
  StoreStatus read_all(void* buf, size_t n, uint64_t offset);
  void load_trailers(uint64_t file_size);

  std::string path_;
  int fd_;
  bool keep_file_;
  FileIo& io_;
  uint64_t stride_;
  mutable std::mutex mutex_;     // guards entries_ only; I/O runs outside it
  std::vector<Entry> entries_;   // [n_slots]
};

}  // namespace flashmem
