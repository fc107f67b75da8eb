#include "kv/kv_cache.h"

#include <cstring>

#include "tensor/kernels.h"
#include "util/error.h"

namespace flashmem {

KvCache::KvCache(int64_t n_layers, int64_t capacity, int64_t kv_dim, DType type)
    : type_(type), n_layers_(n_layers), capacity_(capacity), kv_dim_(kv_dim) {
  if (type != DType::F16 && type != DType::F32)
    fail("KV cache type must be f16 or f32, not {}", dtype_info(type).name);
  if (capacity < 1 || n_layers < 1 || kv_dim < 1) fail("KV cache of size zero requested");
  row_bytes_ = flashmem::row_bytes(type, kv_dim);
  const size_t total = static_cast<size_t>(n_layers) * capacity * row_bytes_;
  keys_.resize(total);
  values_.resize(total);
}

void KvCache::store(int64_t layer, int64_t pos, const float* k, const float* v) {
  uint8_t* kd = keys_.data() + offset(layer, pos);
  uint8_t* vd = values_.data() + offset(layer, pos);
  if (type_ == DType::F32) {
    std::memcpy(kd, k, row_bytes_);
    std::memcpy(vd, v, row_bytes_);
  } else {
    f32_to_f16_row(k, reinterpret_cast<uint16_t*>(kd), kv_dim_);
    f32_to_f16_row(v, reinterpret_cast<uint16_t*>(vd), kv_dim_);
  }
}

}  // namespace flashmem
