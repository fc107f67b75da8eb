// PagedKv's prompt windows (see runtime/paged_kv.h): with a store other than ram, prompt
// attention reads the committed history window by window, each page from its pool cell when
// still resident, else one layer of it from the store, so no copy of the prompt's KV is kept.
#include "runtime/paged_kv.h"
#include "util/error.h"

namespace flashmem {

void PagedKv::read_store_layer(int64_t page, int64_t layer, uint8_t* dst) {
  // The store's segment l is layer l's K and V blocks (make_store splits pages by layer).
  const StoreStatus status = store_->read_segment(page, layer, dst);
  if (status != StoreStatus::kOk)
    fail("KV page {} layer {} could not be read from the store: {} ({})", page, layer,
         describe(status), to_string(status));
}

std::span<const KvSpan> PagedKv::window(int64_t layer, int64_t first) {
  if (first < 0 || first >= windowed_ || first % window_keys_ != 0)
    fail("KV window at position {} is not one of the {}-position windows of [0, {})", first,
         window_keys_, windowed_);
  window_views_.clear();  // the previous window's leases
  window_spans_.clear();
  // Slots start at 64-byte boundaries, as pool cells do.
  const size_t slot_bytes = (layout_.layer_bytes() + 63) / 64 * 64;
  if (!window_buffer_) {
    window_buffer_ = allocate_aligned_bytes(static_cast<size_t>(window_slots_) * slot_bytes);
    if (!window_buffer_) fail("out of memory for a KV window of {} positions", window_keys_);
  }
  const int64_t end = std::min(first + window_keys_, windowed_);
  int64_t slot = 0;
  for (int64_t p = layout_.page_of(first); layout_.first_pos(p) < end; ++p) {
    const uint8_t* k = nullptr;  // [K block][V block] of this layer
    ResidentView leased = pool_->acquire(p);
    if (!leased.pages().empty()) {
      k = leased.pages().front().data + layout_.k(layer);
      window_views_.push_back(std::move(leased));
    } else {
      if (slot == window_slots_)
        fail("KV window at {} overlaps more than {} pages", first, window_slots_);
      uint8_t* dst = window_buffer_.get() + static_cast<size_t>(slot++) * slot_bytes;
      read_store_layer(p, layer, dst);
      k = dst;
    }
    const int64_t lo = std::max(first, layout_.first_pos(p));
    const int64_t hi = std::min(end, layout_.first_pos(p + 1));
    const size_t skip = static_cast<size_t>(lo - layout_.first_pos(p)) * layout_.row_bytes();
    window_spans_.push_back({lo, hi - lo, k + skip, k + layout_.v_offset() + skip});
  }
  return window_spans_;
}

}  // namespace flashmem
