// Seeded random tensors for the random-model writers (random_model*.cpp).
#pragma once
#include <cmath>
#include <random>
#include <string>
#include <vector>

#include "gguf/gguf.h"
#include "tensor/kernels.h"

namespace flashmem {

class RandomTensorWriter {
 public:
  RandomTensorWriter(GgufWriter& writer, uint64_t seed) : writer_(writer), rng_(seed) {}

  // W [rows, cols] ~ N(0, 1/cols): keeps activations O(1) through the layers.
  void matrix(const std::string& name, int64_t rows, int64_t cols, DType type) {
    stack(name, 1, rows, cols, type, {cols, rows});
  }
  // n matrices [rows, cols] ~ N(0, 1/cols), one 3-D tensor (ne = [cols, rows, n]).
  void stack(const std::string& name, int64_t n, int64_t rows, int64_t cols, DType type) {
    stack(name, n, rows, cols, type, {cols, rows, n});
  }

  // Norm gains near 1, biases near 0.
  void vector(const std::string& name, int64_t n, float center, float spread) {
    std::uniform_real_distribution<float> uniform(center - spread, center + spread);
    std::vector<float> v(static_cast<size_t>(n));
    for (float& x : v) x = uniform(rng_);
    writer_.add_tensor(name, DType::F32, {n}, v.data(), v.size() * sizeof(float));
  }

 private:
  void stack(const std::string& name, int64_t n, int64_t rows, int64_t cols, DType type,
             const std::vector<int64_t>& shape) {
    std::normal_distribution<float> normal(0.0f, 1.0f / std::sqrt(static_cast<float>(cols)));
    std::vector<float> row(static_cast<size_t>(cols));
    const size_t rb = row_bytes(type, cols);
    std::vector<uint8_t> data(rb * rows * n);  // [n * rows, cols] in `type`
    for (int64_t r = 0; r < n * rows; ++r) {
      for (float& v : row) v = normal(rng_);
      quantize_row(type, row.data(), data.data() + rb * r, cols);
    }
    writer_.add_tensor(name, type, shape, data.data(), data.size());
  }

  GgufWriter& writer_;
  std::mt19937_64 rng_;
};

}  // namespace flashmem
