// Contiguous per-layer KV cache (the fast tier when no selection policy is active).
#pragma once
#include <cstdint>
#include <vector>

#include "tensor/dtype.h"
#include "util/huge_pages.h"

namespace flashmem {

// Throws Error unless `type` can hold a KV cache: F16, F32, or Q8_0 with head_dim a multiple of
// 32 (attention reads one head's slice of a row, which must begin on a block). For KvCache, which
// sees no heads, kv_dim stands in for head_dim: rows must hold whole blocks.
void check_kv_type(DType type, int64_t head_dim);

class KvCache {
 public:
  // type: F16 (default, half the bytes of F32), F32 (exact; llama.cpp's reference logits use it)
  // or Q8_0 (32 values share an f16 scale: 34 bytes per 32 values, 0.53 of F16; rounding as
  // llama.cpp's q8_0 cache type).
  // values_in_keys (MLA): no V rows are kept; v_row() is the K row (attention reads its first
  // values) and store() ignores v.
  KvCache(int64_t n_layers, int64_t capacity, int64_t kv_dim, DType type, bool values_in_keys);

  DType type() const { return type_; }
  int64_t capacity() const { return capacity_; }
  int64_t kv_dim() const { return kv_dim_; }
  int64_t n_layers() const { return n_layers_; }
  size_t row_bytes() const { return row_bytes_; }  // bytes of one position's K (or V) row
  uint64_t total_bytes() const { return static_cast<uint64_t>(layer_bytes_) * (values_in_keys_ ? 1 : 2); }

  // Converts and stores k[kv_dim], v[kv_dim] at `pos` of `layer`.
  void store(int64_t layer, int64_t pos, const float* k, const float* v);
  // Row of one position: [kv_dim] in type(); position rows are contiguous ([capacity, kv_dim]).
  const uint8_t* k_row(int64_t layer, int64_t pos) const { return keys_ + offset(layer, pos); }
  const uint8_t* v_row(int64_t layer, int64_t pos) const { return values_ + offset(layer, pos); }

 private:
  size_t offset(int64_t layer, int64_t pos) const {
    return (static_cast<size_t>(layer) * capacity_ + pos) * row_bytes_;
  }
  DType type_;
  int64_t n_layers_, capacity_, kv_dim_;
  bool values_in_keys_;
  size_t row_bytes_;
  size_t layer_bytes_;  // bytes of all K rows (and of all V rows): n_layers * capacity * row_bytes
  // K then V, [2, n_layers, capacity, kv_dim] in type_ (just K with values_in_keys), zeroed: on
  // 2 MiB pages from 32 MiB on (large_, touched as rows are stored, see kv_cache.cpp), else in
  // small_.
  std::vector<uint8_t> small_;
  HugePageBuffer large_;
  uint8_t* keys_ = nullptr;    // [n_layers, capacity, kv_dim]
  uint8_t* values_ = nullptr;  // [n_layers, capacity, kv_dim]; keys_ with values_in_keys
};

}  // namespace flashmem
