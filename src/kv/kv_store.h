// The slow KV tier (DESIGN.md "Two tiers"): the full page history of one sequence. Backends:
// RamStore (a mirror in memory, below) and DiskStore (kv/disk_store.h).
//
// Segments: a store splits each page into `segments()` equal parts that can be read alone
// (read_segment). PagedKv uses one segment per layer, so segment l is layer l's K and V blocks
// (PageLayout::k(l), layer_bytes()); the store itself knows only bytes.
//
// Errors: a caller bug (negative page, writing a page twice) throws flashmem::Error; an I/O fault
// (disk full, EIO, corrupted bytes) is a StoreStatus value, never an exception and never bytes
// that differ from what was written.
#pragma once
#include <atomic>
#include <cstdint>
#include <mutex>
#include <optional>
#include <span>
#include <vector>

#include "kv/page_layout.h"
#include "kv/page_slabs.h"

namespace flashmem {

enum class StoreStatus : uint8_t {
  kOk,
  kAbsent,     // page never written (or its write failed)
  kCorrupt,    // checksum mismatch: the bytes are not served
  kIoError,    // EIO or another read/write error, including short transfers that cannot finish
  kNoSpace,    // ENOSPC (disk) or allocation failure (RAM) on write
  kCancelled,  // recall cancelled because the page left the selection (pool only)
};

// Stable lowercase name ("ok", "absent", "corrupt", "io-error", "no-space", "cancelled").
const char* to_string(StoreStatus status);
// What the status means, for error messages ("checksum mismatch", "I/O error, short file or lost connection to the store", ...).
const char* describe(StoreStatus status);

class KvStore {
 public:
  // 1024 segments: the model loader's layer limit (model/config.cpp), so every model can have
  // one segment per layer; a disk slot's table of segment checksums stays <= 8 KiB.
  static constexpr int64_t kMaxSegments = 1024;

  virtual ~KvStore() = default;
  KvStore(const KvStore&) = delete;
  KvStore& operator=(const KvStore&) = delete;

  // Stores `bytes` [page_bytes()] as logical page `page` (>= 0). Pages are immutable: writing a
  // page that is present or being written throws Error. On a non-Ok status the page stays absent
  // and may be written again (e.g. after freeing space). Thread-safe: may run concurrently with
  // reads and writes of other pages.
  virtual StoreStatus write_page(int64_t page, const uint8_t* bytes) = 0;

  // Copies page `page` into dst [page_bytes()]. kOk: dst holds exactly the bytes written. Any
  // other status is a miss: dst contents are unspecified and must not be used. Thread-safe:
  // concurrent reads of any pages and writes of other pages are allowed.
  virtual StoreStatus read_page(int64_t page, uint8_t* dst) = 0;

  // Copies segment `segment` of page `page` (bytes [segment * segment_bytes(), + segment_bytes())
  // of the page) into dst [segment_bytes()]. Same statuses and guarantees as read_page: kOk means
  // dst holds exactly those written bytes; anything else is a miss. A segment is verified on its
  // own where the backend keeps per-segment checksums (a damaged byte elsewhere in the page does
  // not make it miss; a version-1 disk file verifies the whole page instead). Throws Error for a
  // segment outside [0, segments()) (caller bug). Thread-safe like read_page.
  virtual StoreStatus read_segment(int64_t page, int64_t segment, uint8_t* dst) = 0;

  // Reads several pages: status[i] and dst[i] [page_bytes()] for pages[i], with read_page's
  // guarantees for each. Stores with a round trip per call (Redis) send the whole batch at once;
  // the default reads the pages one by one. Spans of different sizes throw Error.
  virtual void read_pages(std::span<const int64_t> pages, std::span<uint8_t* const> dst,
                          std::span<StoreStatus> status);

  // Pages the recall worker should hand to read_pages() at once: 1 (the default) keeps every
  // recall as short as one page read; stores with a round trip per call ask for more.
  virtual size_t recall_batch_pages() const { return 1; }

  // True when `page` was written successfully (reads may still miss on a disk fault).
  virtual bool has_page(int64_t page) const = 0;

  // Capability: true when the store holds its pages in memory and page_in_place() hands out
  // every present page without a copy (RamStore); false for stores that can only copy (disk).
  virtual bool pages_in_place() const { return false; }
  // The stored bytes of `page` [page_bytes()], valid and unchanged for the store's lifetime
  // (zero-copy mapping into the resident pool), or nullptr when the page is absent or the store
  // cannot hand out pages in place. Thread-safe like read_page.
  virtual const uint8_t* page_in_place(int64_t page) const { return nullptr; }

  // ---- Persistence (kv/sequence_entry.h): a sequence's pages kept after its store object.
  // The checksum this store verifies `page` against (disk: xxh3-64 of its bytes; Redis: of its
  // segment table and header), or nullopt when the page is absent or the tier keeps none (ram).
  virtual std::optional<uint64_t> page_digest(int64_t page) const { return std::nullopt; }
  // From now on the pages outlive this object (a persisted sequence's). Throws Error for a tier
  // that cannot keep anything after its owner (ram).
  virtual void keep_pages();

  size_t page_bytes() const { return page_bytes_; }
  int64_t segments() const { return segments_; }
  size_t segment_bytes() const { return page_bytes_ / static_cast<size_t>(segments_); }
  // Bytes of successful writes / reads so far (page_bytes() per page, segment_bytes() per segment
  // read; a segment read that has to fetch the whole page counts the page).
  uint64_t bytes_written() const { return bytes_written_.load(std::memory_order_relaxed); }
  uint64_t bytes_read() const { return bytes_read_.load(std::memory_order_relaxed); }

 protected:
  // page_bytes in [1, PageLayout::kMaxPageBytes]; segments in [1, kMaxSegments] dividing
  // page_bytes. Throws Error otherwise.
  KvStore(size_t page_bytes, int64_t segments);
  static void check_sizes(size_t page_bytes, int64_t segments);  // the constructor's checks
  // Throws Error for page < 0 or a page whose byte offset would not fit an int64.
  void check_page_index(int64_t page) const;
  // Throws Error for a segment outside [0, segments()).
  void check_segment_index(int64_t segment) const;

  const size_t page_bytes_;
  const int64_t segments_;
  std::atomic<uint64_t> bytes_written_{0};
  std::atomic<uint64_t> bytes_read_{0};
};

// Per-page write state shared by the backends: present pages are immutable, so readers need the
// lock only to look the page up, never while copying bytes.
enum class PageState : uint8_t { kAbsent, kWriting, kPresent };

// Pages in memory, in slots of large slabs on 2 MiB pages (PageSlabs) that never move, so that
// pointers stay valid while the table grows (zero-copy mapping relies on it).
class RamStore final : public KvStore {
 public:
  // page_bytes >= 1 and segments dividing it (throws Error otherwise).
  explicit RamStore(size_t page_bytes, int64_t segments = 1);

  StoreStatus write_page(int64_t page, const uint8_t* bytes) override;
  StoreStatus read_page(int64_t page, uint8_t* dst) override;
  StoreStatus read_segment(int64_t page, int64_t segment, uint8_t* dst) override;
  bool has_page(int64_t page) const override;
  bool pages_in_place() const override { return true; }
  const uint8_t* page_in_place(int64_t page) const override;

 private:
  mutable std::mutex mutex_;          // guards the tables and slabs below (not the page bytes)
  std::vector<const uint8_t*> pages_; // [n_pages] each [page_bytes] in slabs_; null while absent
  std::vector<PageState> states_;     // [n_pages]
  PageSlabs slabs_;                   // where the pages' bytes live
};

}  // namespace flashmem
