#include "kv/kv_store.h"

#include <cstring>
#include <limits>
#include <new>

#include "util/error.h"

namespace flashmem {

const char* to_string(StoreStatus status) {
  switch (status) {
    case StoreStatus::kOk: return "ok";
    case StoreStatus::kAbsent: return "absent";
    case StoreStatus::kCorrupt: return "corrupt";
    case StoreStatus::kIoError: return "io-error";
    case StoreStatus::kNoSpace: return "no-space";
    case StoreStatus::kCancelled: return "cancelled";
  }
  return "unknown";
}

const char* describe(StoreStatus status) {
  switch (status) {
    case StoreStatus::kOk: return "ok";
    case StoreStatus::kAbsent: return "page not in the store";
    case StoreStatus::kCorrupt: return "checksum mismatch";
    case StoreStatus::kIoError: return "I/O error, short file or lost connection to the store";
    case StoreStatus::kNoSpace: return "no space left";
    case StoreStatus::kCancelled: return "recall cancelled";
  }
  return "unknown status";
}

KvStore::KvStore(size_t page_bytes, int64_t segments) : page_bytes_(page_bytes), segments_(segments) {
  check_sizes(page_bytes, segments);
}

void KvStore::read_pages(std::span<const int64_t> pages, std::span<uint8_t* const> dst,
                         std::span<StoreStatus> status) {
  if (dst.size() != pages.size() || status.size() != pages.size()) fail("read_pages: spans of different sizes");
  for (size_t i = 0; i < pages.size(); ++i) status[i] = read_page(pages[i], dst[i]);
}

void KvStore::keep_pages() {
  fail("the ram KV tier keeps nothing after its sequence: persisting a sequence needs "
       "--kv-store disk:DIR or redis://");
}

void KvStore::check_sizes(size_t page_bytes, int64_t segments) {
  if (page_bytes < 1 || page_bytes > PageLayout::kMaxPageBytes)
    fail("KV store page size {} outside [1, {}]", page_bytes, PageLayout::kMaxPageBytes);
  if (segments < 1 || segments > kMaxSegments || page_bytes % static_cast<size_t>(segments) != 0)
    fail("KV store pages of {} bytes cannot be split into {} equal segments (at most {})",
         page_bytes, segments, kMaxSegments);
}

void KvStore::check_page_index(int64_t page) const {
  // Any backend's byte offset of a page (disk: header + page * stride, stride < page_bytes +
  // 16 KiB: a full segment table, the trailer, block rounding) must fit an int64 with room to spare.
  const int64_t max_page =
      std::numeric_limits<int64_t>::max() / 2 / (static_cast<int64_t>(page_bytes_) + 16384);
  if (page < 0 || page > max_page) fail("KV page index {} out of range [0, {}]", page, max_page);
}

void KvStore::check_segment_index(int64_t segment) const {
  if (segment < 0 || segment >= segments_)
    fail("KV page segment {} out of range [0, {})", segment, segments_);
}

// ---- RamStore ------------------------------------------------------------------------------

RamStore::RamStore(size_t page_bytes, int64_t segments) : KvStore(page_bytes, segments), slabs_(page_bytes) {}

StoreStatus RamStore::write_page(int64_t page, const uint8_t* bytes) {
  check_page_index(page);
  const auto index = static_cast<size_t>(page);
  uint8_t* slot = nullptr;
  {
    std::lock_guard lock(mutex_);
    if (index >= states_.size()) {
      try {
        states_.resize(index + 1, PageState::kAbsent);
        pages_.resize(index + 1, nullptr);
      } catch (const std::bad_alloc&) {
        return StoreStatus::kNoSpace;  // table for an absurd page index: out of memory
      }
    }
    if (states_[index] != PageState::kAbsent) fail("KV page {} written twice", page);
    slot = slabs_.allocate();  // a slot is taken under the lock, filled outside it
    if (slot == nullptr) return StoreStatus::kNoSpace;
    states_[index] = PageState::kWriting;
  }
  // Copy outside the lock: readers of other pages never wait for a page copy.
  std::memcpy(slot, bytes, page_bytes_);
  std::lock_guard lock(mutex_);
  pages_[index] = slot;
  states_[index] = PageState::kPresent;
  bytes_written_.fetch_add(page_bytes_, std::memory_order_relaxed);
  return StoreStatus::kOk;
}

const uint8_t* RamStore::page_in_place(int64_t page) const {
  std::lock_guard lock(mutex_);
  if (page < 0 || static_cast<size_t>(page) >= states_.size()) return nullptr;
  if (states_[page] != PageState::kPresent) return nullptr;
  return pages_[page];
}

StoreStatus RamStore::read_page(int64_t page, uint8_t* dst) {
  const uint8_t* src = page_in_place(page);
  if (src == nullptr) return StoreStatus::kAbsent;
  std::memcpy(dst, src, page_bytes_);  // immutable once present: safe without the lock
  bytes_read_.fetch_add(page_bytes_, std::memory_order_relaxed);
  return StoreStatus::kOk;
}

StoreStatus RamStore::read_segment(int64_t page, int64_t segment, uint8_t* dst) {
  check_segment_index(segment);
  const uint8_t* src = page_in_place(page);
  if (src == nullptr) return StoreStatus::kAbsent;
  const size_t n = segment_bytes();
  std::memcpy(dst, src + static_cast<size_t>(segment) * n, n);
  bytes_read_.fetch_add(n, std::memory_order_relaxed);
  return StoreStatus::kOk;
}

bool RamStore::has_page(int64_t page) const { return page_in_place(page) != nullptr; }

}  // namespace flashmem
