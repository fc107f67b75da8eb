#include "kv/page_slabs.h"

#include <algorithm>
#include <new>

#include "util/error.h"

namespace flashmem {

PageSlabs::PageSlabs(size_t page_bytes) : slot_bytes_((std::max<size_t>(page_bytes, 1) + 63) / 64 * 64) {}

uint8_t* PageSlabs::allocate() noexcept {
  if (used_in_newest_ == slots_in_newest_) {
    // The next slab: twice the last (from one huge page) up to kMaxSlabBytes, in whole slots (at
    // least one), then as many slots as its whole 2 MiB pages hold: less than 2 MiB of a slab is
    // never used, and only the part of it that is written becomes resident.
    const int shift = static_cast<int>(std::min<size_t>(slabs_.size(), 4));  // 2 MiB << 4 = 32 MiB
    const size_t target = std::min(kHugePageBytes << shift, kMaxSlabBytes);
    const size_t want = std::max<size_t>(target / slot_bytes_, 1) * slot_bytes_;
    try {
      slabs_.reserve(slabs_.size() + 1);  // so that the push below cannot throw after the mapping
      HugePageBuffer slab(want);
      slots_in_newest_ = static_cast<int64_t>(slab.size() / slot_bytes_);
      used_in_newest_ = 0;
      slabs_.push_back(std::move(slab));
    } catch (const Error&) {
      return nullptr;  // no address space or memory left: the caller reports no space
    } catch (const std::bad_alloc&) {
      return nullptr;
    }
  }
  return slabs_.back().data() + static_cast<size_t>(used_in_newest_++) * slot_bytes_;
}

}  // namespace flashmem
