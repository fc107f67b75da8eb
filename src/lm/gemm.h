// Dense f32 products for the trainer, on top of the engine's packed GEMM (tensor/kernels.h).
// Every product of a forward or backward pass is C = A · Bᵀ with row-major operands, so one
// entry point plus an explicit transpose covers Y = X Wᵀ, dX = dY W and dW = dYᵀ X.
// Single-threaded: the trainer parallelises over sequences, one per thread.
#pragma once
#include <cstdint>

namespace flashmem::lm {

// C[m, n] = A[m, k] · B[n, k]ᵀ (C is overwritten; no aliasing).
void gemm_abt(const float* a, const float* b, float* c, int64_t m, int64_t n, int64_t k);
void gemm_abt_ref(const float* a, const float* b, float* c, int64_t m, int64_t n, int64_t k);

// at[cols, rows] = a[rows, cols]ᵀ
void transpose(const float* a, float* at, int64_t rows, int64_t cols);

}  // namespace flashmem::lm
