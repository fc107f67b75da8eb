#include "kv/page_layout.h"

#include "util/error.h"

namespace flashmem {

PageLayout PageLayout::make(int64_t n_layers, int64_t page_tokens, int64_t kv_dim,
                            int64_t elem_bytes) {
  if (n_layers < 1 || page_tokens < 1 || kv_dim < 1 || elem_bytes < 1)
    fail("invalid KV page layout: n_layers {}, page_tokens {}, kv_dim {}, elem_bytes {}", n_layers,
         page_tokens, kv_dim, elem_bytes);
  // Checked in steps so that no product can overflow before the comparison.
  const uint64_t limit = kMaxPageBytes;
  uint64_t bytes = static_cast<uint64_t>(elem_bytes);
  for (int64_t factor : {kv_dim, page_tokens, n_layers, int64_t{2}}) {
    if (static_cast<uint64_t>(factor) > limit || bytes * static_cast<uint64_t>(factor) > limit)
      fail("KV page of {} layers x {} tokens x {} x {} bytes exceeds {} bytes", n_layers,
           page_tokens, kv_dim, elem_bytes, limit);
    bytes *= static_cast<uint64_t>(factor);
  }
  return PageLayout{n_layers, page_tokens, kv_dim, elem_bytes};
}

AlignedBytes allocate_aligned_bytes(size_t n) noexcept {
  constexpr size_t kAlign = 64;
  const size_t rounded = (n + kAlign - 1) / kAlign * kAlign;
  return AlignedBytes(static_cast<uint8_t*>(std::aligned_alloc(kAlign, rounded == 0 ? kAlign : rounded)));
}

}  // namespace flashmem
