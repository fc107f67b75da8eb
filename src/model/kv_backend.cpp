#include "model/kv_backend.h"

#include <random>

#include "tensor/kernels.h"
#include "util/error.h"

namespace flashmem {

void fill_random_rows(uint8_t* dst, int64_t n_rows, int64_t kv_dim, DType type, uint64_t seed) {
  std::mt19937_64 rng(seed);
  std::normal_distribution<float> normal(0.0f, 1.0f);
  std::vector<float> row(static_cast<size_t>(kv_dim));  // [kv_dim]
  const size_t rb = row_bytes(type, kv_dim);
  for (int64_t r = 0; r < n_rows; ++r) {
    for (float& x : row) x = normal(rng);
    quantize_row(type, row.data(), dst + rb * r, kv_dim);
  }
}

void ContiguousKv::fill_synthetic(int64_t n, uint64_t seed) {
  if (n > cache_.capacity()) fail("{} synthetic positions exceed the capacity {}", n, cache_.capacity());
  std::vector<float> k(static_cast<size_t>(cache_.kv_dim())), v(k.size());
  std::mt19937_64 rng(seed);
  std::normal_distribution<float> normal(0.0f, 1.0f);
  for (int64_t layer = 0; layer < static_cast<int64_t>(cache_.n_layers()); ++layer)
    for (int64_t pos = 0; pos < n; ++pos) {
      for (size_t i = 0; i < k.size(); ++i) {
        k[i] = normal(rng);
        v[i] = normal(rng);
      }
      cache_.store(layer, pos, k.data(), v.data());
    }
  n_visible_ = n;
}

}  // namespace flashmem
