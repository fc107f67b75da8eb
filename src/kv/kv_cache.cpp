#include "kv/kv_cache.h"

#include "tensor/kernels.h"
#include "util/error.h"

namespace flashmem {

// A cache of kHugeKvMinBytes or more goes on 2 MiB pages (HugePageBuffer): decode attention
// streams all of it every step, and on 4 KiB pages that is a TLB miss and a stalled hardware
// prefetcher every 4 KiB. On the 2-core Zen 5 VM (docs/BENCHMARKS.md, eleventh session, 6 A/B
// pairs at 16K) the attention part of a decode step took 0.825x the time (0.705-0.896) and
// decode ran 1.147x faster (1.101-1.247); 64K 1.127x, 4K (51 MB) unchanged.

KvCache::KvCache(int64_t n_layers, int64_t capacity, int64_t kv_dim, DType type, bool values_in_keys)
    : type_(type), n_layers_(n_layers), capacity_(capacity), kv_dim_(kv_dim),
      values_in_keys_(values_in_keys) {
  check_kv_type(type, kv_dim);
  if (capacity < 1 || n_layers < 1 || kv_dim < 1) fail("KV cache of size zero requested");
  row_bytes_ = flashmem::row_bytes(type, kv_dim);
  layer_bytes_ = static_cast<size_t>(n_layers) * capacity * row_bytes_;
  const size_t total = total_bytes();
  if (total >= kHugeKvMinBytes) {
    large_ = HugePageBuffer(total);
    keys_ = large_.data();
  } else {
    small_.resize(total);
    keys_ = small_.data();
  }
  values_ = values_in_keys ? keys_ : keys_ + layer_bytes_;
}

void KvCache::store(int64_t layer, int64_t pos, const float* k, const float* v) {
  quantize_row(type_, k, keys_ + offset(layer, pos), kv_dim_);
  if (!values_in_keys_) quantize_row(type_, v, values_ + offset(layer, pos), kv_dim_);
}

void check_kv_type(DType type, int64_t head_dim) {
  if (type == DType::F16 || type == DType::F32) return;
  if (type != DType::Q8_0)
    fail("KV cache type must be f16, f32 or q8_0, not {}", dtype_info(type).name);
  if (head_dim % kQ8Block != 0)
    fail("a q8_0 KV cache needs head_dim (here {}) to be a multiple of {}: each head's slice of a "
         "row must start on a block", head_dim, kQ8Block);
}

}  // namespace flashmem
