// DiskStore: the slow KV tier in a file (DESIGN.md `--kv-store disk:PATH`), one file per sequence.
//
// File layout, version 2 (little-endian):
//   [0, 4096)                     header: magic "FMKVDSK1", version 2, trailer bytes, page bytes,
//                                 slot stride, segments, xxh3-64 of the preceding header bytes
//   slot i at 4096 + i * stride:  [page bytes][segment table][32-byte trailer][hole up to stride]
//   segment table:                `segments` xxh3-64 values, one per equal segment of the page
//   trailer:                      magic "FMKVPAGE", page index, xxh3-64 of the page bytes,
//                                 xxh3-64 of the segment table and the trailer's first 24 bytes
// Version 1 (still read, no longer written) is the same without the header's segments field
// (its checksum covers 32 bytes) and without segment tables (the trailer follows the page bytes,
// its checksum covers its own 24 bytes): a version-1 file is a version-2 one with zero-length
// tables. Its pages have no segment checksums, so read_segment() reads and verifies whole pages.
//
// The stride is page_bytes + table + 32 rounded up to 4096 (the page-cache page and the usual
// block size), so every slot's data starts block-aligned. Pages are written once (data, then
// table + trailer in one transfer): a slot whose trailer is missing or torn is an absent page after
// a reopen, and every read verifies the bytes it returns against checksums kept in memory (the
// page's for read_page, the segment's for read_segment), so a flipped bit on disk is a miss, not
// data.
#pragma once
#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "kv/kv_store.h"
#include "util/owned_file.h"

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
  // Equal segments per page that read_segment() reads and verifies alone (KvStore "Segments");
  // must divide page_bytes. 1 = whole pages only.
  int64_t segments = 1;
};

class DiskStore final : public KvStore {
 public:
  // Creates a new file for pages of page_bytes (a version-2 file with options.segments segments
  // per page) and writes its header. `path` is either a directory, in which a file named
  // flashmem-kv-PID.RANDOM.pages is created (after removing stale ones of dead processes), or the
  // name of a new file: an existing file or symlink there is refused, never opened (see
  // util/owned_file.h, which also removes the file on SIGINT/SIGTERM unless keep_file). Throws
  // Error for bad sizes, or if the file cannot be created or the header cannot be written (the
  // caller may fall back to RAM).
  static std::unique_ptr<DiskStore> create(const std::string& path, size_t page_bytes,
                                           DiskStoreOptions options = {});
  // Opens a file written by a store with keep_file: validates the header (its page bytes must
  // equal page_bytes; a version-2 file's segments must equal options.segments) and loads the
  // checksums of every slot whose trailer is intact; slots with a missing or torn trailer are
  // absent. A version-1 file opens with any options.segments (segment reads then read whole
  // pages) and new pages written to it use version 1 too. Throws Error for a missing file or a
  // bad header.
  static std::unique_ptr<DiskStore> open(const std::string& path, size_t page_bytes,
                                         DiskStoreOptions options = {});

  // KvStore contract. Writes: ENOSPC/EDQUOT -> kNoSpace, other errors -> kIoError (the page stays
  // absent); short writes are continued. Reads: absent -> kAbsent, I/O error or short file ->
  // kIoError, checksum mismatch -> kCorrupt. read_segment is one positional read of just the
  // segment's bytes (version 2), verified against that segment's checksum.
  StoreStatus write_page(int64_t page, const uint8_t* bytes) override;
  StoreStatus read_page(int64_t page, uint8_t* dst) override;
  StoreStatus read_segment(int64_t page, int64_t segment, uint8_t* dst) override;
  bool has_page(int64_t page) const override;
  std::optional<uint64_t> page_digest(int64_t page) const override;  // the page's xxh3-64
  void keep_pages() override { file_.keep(); }  // a created file is no longer removed

  // Re-reads every present page and returns those that fail verification (corrupt or unreadable),
  // in page order. Costs one full read of the file.
  std::vector<int64_t> verify_all();
  // fdatasync: makes written pages durable (only needed with keep_file). kIoError on failure.
  StoreStatus sync();

  const std::string& path() const { return file_.path(); }
  uint64_t slot_stride() const { return stride_; }
  uint32_t format_version() const { return table_segments_ > 0 ? 2 : 1; }

  static constexpr uint64_t kHeaderBytes = 4096;  // one block, keeps slot 0 block-aligned
  static constexpr uint64_t kTrailerBytes = 32;

 private:
  struct Entry {
    PageState state = PageState::kAbsent;
    uint64_t checksum = 0;  // xxh3-64 of the page bytes, valid when kPresent
  };

  DiskStore(OwnedFile file, size_t page_bytes, DiskStoreOptions options);
  uint64_t slot_offset(int64_t page) const { return kHeaderBytes + static_cast<uint64_t>(page) * stride_; }
  // Bytes after a slot's page bytes: the segment table and the trailer.
  size_t record_bytes() const { return static_cast<size_t>(table_segments_) * 8 + kTrailerBytes; }
  // Sets the slot format: table_segments segment checksums per slot (0 = version 1).
  void set_table_segments(int64_t table_segments);
  // Version-1 files: read_segment through a verified read of the whole page.
  StoreStatus read_segment_via_page(int64_t page, int64_t segment, uint8_t* dst);
  // Full-length positional transfers through io_; Ok, kNoSpace or kIoError.
  StoreStatus write_all(const void* buf, size_t n, uint64_t offset);
  StoreStatus read_all(void* buf, size_t n, uint64_t offset);
  void load_trailers(uint64_t file_size);

  OwnedFile file_;  // removed on destruction unless keep_file (or opened, not created)
  FileIo& io_;
  int64_t table_segments_ = 0;  // segment checksums per slot in the file: segments(), or 0 (v1)
  uint64_t stride_ = 0;
  mutable std::mutex mutex_;     // guards entries_ and segment_checksums_; I/O runs outside it
  std::vector<Entry> entries_;   // [n_slots]
  std::vector<uint64_t> segment_checksums_;  // [n_slots, table_segments_], valid when kPresent
};

}  // namespace flashmem
