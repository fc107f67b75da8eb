#include "lm/gemm.h"

#include "tensor/kernels.h"

namespace flashmem::lm {

void gemm_abt(const float* a, const float* b, float* c, int64_t m, int64_t n, int64_t k) {
  // matmul's Y[n_tokens, rows] = X[n_tokens, cols] · W[rows, cols]ᵀ with X = A, W = B.
  matmul(DType::F32, b, a, c, m, n, k, nullptr);
}

void gemm_abt_ref(const float* a, const float* b, float* c, int64_t m, int64_t n, int64_t k) {
  for (int64_t i = 0; i < m; ++i)
    for (int64_t j = 0; j < n; ++j) {
      double s = 0;
      for (int64_t p = 0; p < k; ++p) s += static_cast<double>(a[i * k + p]) * b[j * k + p];
      c[i * n + j] = static_cast<float>(s);
    }
}

void transpose(const float* a, float* at, int64_t rows, int64_t cols) {
  // 32 × 32 tiles keep both the read and the write side within L1.
  constexpr int64_t kTile = 32;
  for (int64_t r0 = 0; r0 < rows; r0 += kTile)
    for (int64_t c0 = 0; c0 < cols; c0 += kTile) {
      const int64_t r1 = r0 + kTile < rows ? r0 + kTile : rows;
      const int64_t c1 = c0 + kTile < cols ? c0 + kTile : cols;
      for (int64_t r = r0; r < r1; ++r)
        for (int64_t c = c0; c < c1; ++c) at[c * rows + r] = a[r * cols + c];
    }
}

}  // namespace flashmem::lm
