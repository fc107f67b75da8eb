#include "kv/page_layout.h"

#include "util/error.h"
#include "util/huge_pages.h"

namespace flashmem {

PageLayout PageLayout::make(int64_t n_layers, int64_t page_tokens, int64_t kv_dim,
                            int64_t elem_bytes, int64_t block_elems, bool values_in_keys) {
  if (n_layers < 1 || page_tokens < 1 || kv_dim < 1 || elem_bytes < 1 || block_elems < 1 ||
      kv_dim % block_elems != 0)
    fail("invalid KV page layout: n_layers {}, page_tokens {}, kv_dim {}, {} bytes per {} elements",
         n_layers, page_tokens, kv_dim, elem_bytes, block_elems);
  // Checked in steps so that no product can overflow before the comparison.
  const uint64_t limit = kMaxPageBytes;
  uint64_t bytes = static_cast<uint64_t>(elem_bytes);
  for (int64_t factor : {kv_dim / block_elems, page_tokens, n_layers, int64_t{values_in_keys ? 1 : 2}}) {
    if (static_cast<uint64_t>(factor) > limit || bytes * static_cast<uint64_t>(factor) > limit)
      fail("KV page of {} layers x {} tokens x {} elements ({} bytes per {}) exceeds {} bytes",
           n_layers, page_tokens, kv_dim, elem_bytes, block_elems, limit);
    bytes *= static_cast<uint64_t>(factor);
  }
  return PageLayout{n_layers, page_tokens, kv_dim, elem_bytes, block_elems, values_in_keys};
}

AlignedBytes allocate_aligned_bytes(size_t n) noexcept {
  if (n >= kHugeKvMinBytes) {
    // The resident pool's arena and the disk window buffer go on 2 MiB pages, as the contiguous
    // cache does (kv/kv_cache.cpp): decode attention streams them every step. 6 A/B pairs each
    // (docs/BENCHMARKS.md, twelfth session): `--policy full --kv-store disk` at 16K decoded
    // 1.35x faster (attention 0.71x the time), `lsa` 10% on disk at 64K 1.04x.
    const size_t rounded = (n + kHugePageBytes - 1) / kHugePageBytes * kHugePageBytes;
    auto* p = static_cast<uint8_t*>(std::aligned_alloc(kHugePageBytes, rounded));
    if (p != nullptr) advise_huge_pages(p, rounded);
    return AlignedBytes(p);
  }
  constexpr size_t kAlign = 64;
  const size_t rounded = (n + kAlign - 1) / kAlign * kAlign;
  return AlignedBytes(static_cast<uint8_t*>(std::aligned_alloc(kAlign, rounded == 0 ? kAlign : rounded)));
}

}  // namespace flashmem
