// KV pages: the unit of KV storage, recall and residency (DESIGN.md "Units of KV memory").
// A page holds `page_tokens` consecutive positions of K and V for ALL layers; logical page i covers
// positions [i * page_tokens, (i + 1) * page_tokens). The kv/ code is generic over page bytes:
// it never looks at element values, only at this layout.
#pragma once
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <memory>

namespace flashmem {

// Byte layout of one page: [n_layers][2 (K, V)][page_tokens][kv_dim] elements, stored in blocks
// of block_elems elements and elem_bytes bytes (f16: 1 element in 2 bytes; q8_0: 32 in 34).
// K and V of one layer are each one contiguous [page_tokens, kv_dim] block, so attention over a
// page reads two dense row blocks per layer. With values_in_keys (MLA: the value is the first
// values of the key row) a layer holds the K block alone: [n_layers][page_tokens][kv_dim].
struct PageLayout {
  int64_t n_layers = 0;
  int64_t page_tokens = 0;
  int64_t kv_dim = 0;       // n_kv_heads * head_dim
  int64_t elem_bytes = 0;   // bytes per block: 2 for f16, 4 for f32, 34 for q8_0
  int64_t block_elems = 1;  // elements per block: 1, or 32 for q8_0
  bool values_in_keys = false;  // no V block: v(layer) == k(layer)

  // Validated constructor: every size >= 1, kv_dim a multiple of block_elems and page_bytes() <=
  // kMaxPageBytes; throws Error otherwise.
  static PageLayout make(int64_t n_layers, int64_t page_tokens, int64_t kv_dim, int64_t elem_bytes,
                         int64_t block_elems = 1, bool values_in_keys = false);

  // 1 GiB: far above any real page (a 70B model with 80 layers, kv_dim 1024, f16, 64 tokens is
  // 20 MiB) and small enough that page counts times page bytes cannot overflow int64 offsets.
  static constexpr size_t kMaxPageBytes = size_t{1} << 30;

  size_t row_bytes() const { return static_cast<size_t>(kv_dim / block_elems * elem_bytes); }  // [kv_dim]
  size_t block_bytes() const { return static_cast<size_t>(page_tokens) * row_bytes(); }
  // One layer's K and V blocks, adjacent ([2, page_tokens, kv_dim]; [page_tokens, kv_dim] with
  // values_in_keys): the unit of a per-layer read.
  size_t blocks_per_layer() const { return values_in_keys ? 1 : 2; }
  size_t layer_bytes() const { return blocks_per_layer() * block_bytes(); }
  size_t page_bytes() const { return static_cast<size_t>(n_layers) * layer_bytes(); }

  // Byte offsets inside a page of layer's K block and V block ([page_tokens, kv_dim] each).
  size_t k(int64_t layer) const { return static_cast<size_t>(layer) * layer_bytes(); }
  size_t v(int64_t layer) const { return k(layer) + v_offset(); }
  // Bytes from a layer's K block to its V block (0: values_in_keys).
  size_t v_offset() const { return values_in_keys ? 0 : block_bytes(); }
  // Byte offsets of one position's K / V row ([kv_dim]); slot = pos - first_pos(page).
  size_t k_row(int64_t layer, int64_t slot) const { return k(layer) + slot * row_bytes(); }
  size_t v_row(int64_t layer, int64_t slot) const { return v(layer) + slot * row_bytes(); }

  int64_t page_of(int64_t pos) const { return pos / page_tokens; }
  int64_t slot_of(int64_t pos) const { return pos % page_tokens; }
  int64_t first_pos(int64_t page) const { return page * page_tokens; }
};

// 64-byte aligned heap bytes (cache line and AVX-512 register width, so kernels may use aligned
// loads on page blocks whose sizes are multiples of 64). Contents are uninitialised.
struct AlignedFree {
  void operator()(uint8_t* p) const { std::free(p); }
};
using AlignedBytes = std::unique_ptr<uint8_t[], AlignedFree>;
// Allocates n bytes (rounded up to 64); returns nullptr if the allocation fails. From
// kHugeKvMinBytes on (util/huge_pages.h) the bytes start on a 2 MiB boundary, are rounded up to
// whole 2 MiB pages and asked onto huge pages (a hint the kernel may decline).
AlignedBytes allocate_aligned_bytes(size_t n) noexcept;

}  // namespace flashmem
