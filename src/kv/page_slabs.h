// Page-sized slots carved from a few large allocations ("slabs") on 2 MiB pages: how RamStore
// keeps its pages. One allocation per page (768 KiB for the 125M bench model) put a RAM-store
// history on 4 KiB pages, and decode attention reading it in place paid a page walk every 4 KiB:
// `bench --context 65536 --fill random --policy full` decoded 17.0 tok/s with the RAM store
// against 23.2 with the disk store, whose resident pool is one arena on 2 MiB pages
// (docs/BENCHMARKS.md, seventeenth session). Internal to src/kv.
#pragma once
#include <cstddef>
#include <cstdint>
#include <vector>

#include "util/huge_pages.h"

namespace flashmem {

class PageSlabs {
 public:
  // Slabs start at one 2 MiB page and double up to kMaxSlabBytes: a store of a few pages reserves
  // one huge page, a long history a few dozen slabs. Past 32 MiB a slab saves nothing more (a
  // page walk per 32 MiB is nothing beside streaming it) and only leaves more untouched.
  static constexpr size_t kMaxSlabBytes = size_t{32} << 20;

  explicit PageSlabs(size_t page_bytes);

  // A new slot of page_bytes, 64-byte aligned (kernels may use aligned loads), zeroed, valid and unmoved until this object dies. nullptr when no memory could
  // be reserved. Not thread-safe: the owner serialises calls (RamStore holds its table lock).
  uint8_t* allocate() noexcept;

  size_t slot_bytes() const { return slot_bytes_; }  // page_bytes rounded up to 64
  int64_t slabs() const { return static_cast<int64_t>(slabs_.size()); }

 private:
  size_t slot_bytes_;
  std::vector<HugePageBuffer> slabs_;  // each [slots of slot_bytes_, whole 2 MiB pages]
  int64_t slots_in_newest_ = 0;        // how many slots the newest slab holds
  int64_t used_in_newest_ = 0;         // of them, handed out
};

}  // namespace flashmem
