// Compute kernels. They see spans and shapes, never model types. Every fast kernel has a plain
// scalar twin named *_ref with the same contract; tests/unit/test_kernels.cpp checks them against
// each other on random inputs.
//
// Weight matrices are row-major in their storage type: W [rows, cols], row r starts at
// (const uint8_t*)w + r * row_bytes(type, cols); cols is a multiple of the type's block size.
// For quantized weights the activations are first quantized as llama.cpp does (Q8_0 blocks for
// Q8_0, Q4_0, Q4_1, Q5_0, Q5_1, IQ4_NL; Q8_K super-blocks for the K-quants Q2_K..Q6_K, see
// block_quants.h), so results match llama.cpp's quantized dot products; float types compute in
// f32.
#pragma once
#include <cstdint>
#include <span>

#include "tensor/dtype.h"
#include "util/thread_pool.h"

namespace flashmem {

// The instruction set this build's fast kernels were compiled for (-march), as benchmarks report
// it: "avx512-vnni" (AVX-512 F/BW/VL with VNNI integer dots), "avx512", "avx2" (with FMA and F16C)
// or "scalar" (the _ref twins).
const char* kernel_isa();

// ---- rows ------------------------------------------------------------------------------------
// dst[n] = src row of `type` converted to f32.
void dequantize_row(DType type, const void* src, float* dst, int64_t n);
void dequantize_row_ref(DType type, const void* src, float* dst, int64_t n);
// src[n] f32 -> dst row of `type` (every type but the integer ones); round-to-nearest,
// llama.cpp's reference quantizers for Q8_0 (d = amax/127) and Q4_0 (d = max/-8 by signed max
// magnitude), simple range-based ones for the other block types (block_quants.h).
void quantize_row(DType type, const float* src, void* dst, int64_t n);
void quantize_row_ref(DType type, const float* src, void* dst, int64_t n);

// f32 <-> f16 for whole rows (KV cache writes and reads).
void f32_to_f16_row(const float* src, uint16_t* dst, int64_t n);
void f16_to_f32_row(const uint16_t* src, float* dst, int64_t n);

// ---- vector ops (single thread) ----------------------------------------------------------------
float dot_f32(const float* a, const float* b, int64_t n);
float dot_f32_ref(const float* a, const float* b, int64_t n);
// dot of an f16 vector with an f32 vector.
float dot_f16_f32(const uint16_t* a, const float* b, int64_t n);
float dot_f16_f32_ref(const uint16_t* a, const float* b, int64_t n);
// y[n] += alpha * x[n]
void axpy_f32(float alpha, const float* x, float* y, int64_t n);
void axpy_f32_ref(float alpha, const float* x, float* y, int64_t n);
void axpy_f16(float alpha, const uint16_t* x, float* y, int64_t n);
void axpy_f16_ref(float alpha, const uint16_t* x, float* y, int64_t n);
// Grouped-query attention: n_q query heads share one f16 K row, which the fast paths convert once
// for all of them. Each head's result is bit-identical to dot_f16_f32's.
// out[g] = dot_f16_f32(k, q + g·n, n) for g < n_q   (q: [n_q, n])
void dot_f16_f32_heads(const uint16_t* k, const float* q, int64_t n_q, int64_t n, float* out);
void dot_f16_f32_heads_ref(const uint16_t* k, const float* q, int64_t n_q, int64_t n, float* out);
// y[n] = x[n] / sqrt(mean(x^2) + eps) * weight[n]   (x and y may alias)
void rms_norm(const float* x, const float* weight, float* y, int64_t n, float eps);
void rms_norm_ref(const float* x, const float* weight, float* y, int64_t n, float eps);

// x[n] = exp(x[n] - shift) in place; returns the sum of the results (softmax numerator and
// denominator). The fast path uses a degree-6 polynomial (relative error < 1e-6 vs std::exp).
float exp_shift_sum(float* x, int64_t n, float shift);
float exp_shift_sum_ref(float* x, int64_t n, float shift);

// ---- matrix products (threaded over `pool`; pool may be nullptr for single-thread) -------------
// y[rows] = W[rows, cols] · x[cols]
void matvec(DType type, const void* w, const float* x, float* y, int64_t rows, int64_t cols,
            ThreadPool* pool);
void matvec_ref(DType type, const void* w, const float* x, float* y, int64_t rows, int64_t cols);
// One matrix of matvec_many: y[rows] = W[rows, cols] · x.
struct MatvecTarget {
  const void* w;
  float* y;
  int64_t rows;
};
// matvec of several matrices of one type and column count with the same x (a layer's Q, K and V,
// or its gate and up), in one dispatch of the pool: their rows are split across the threads as
// one concatenated range, so the threads meet once instead of once per matrix. Every y row is
// bit-identical to matvec's.
void matvec_many(DType type, std::span<const MatvecTarget> targets, const float* x, int64_t cols,
                 ThreadPool* pool);

// Y[n_tokens, rows] = X[n_tokens, cols] · W[rows, cols]^T for batched decode (one token of each of
// several sequences): each row of Y is bit-identical to matvec of that row of X, while each
// block of weight rows is read from memory once for all tokens (the other tokens find it in
// cache), so decoding n sequences costs about one weight read instead of n.
void matvec_batch(DType type, const void* w, const float* x, float* y, int64_t n_tokens, int64_t rows,
                  int64_t cols, ThreadPool* pool);

// Y[n_tokens, rows] = X[n_tokens, cols] · W[rows, cols]^T   (X, Y row-major, dense)
// Few tokens go through matvec per token; larger batches use a packed GEMM: for Q8_0/Q4_0 integer
// block sums like matvec (AVX-512 VNNI and AVX2 builds) or f32 products of the same
// Q8_0-rounded activations (other builds), so results agree with matvec to f32 summation-order
// rounding, not bit for bit. K-quants (Q2_K..Q6_K) on AVX2 builds are matvec_batch, bit for bit
// matvec per token.
void matmul(DType type, const void* w, const float* x, float* y, int64_t n_tokens, int64_t rows,
            int64_t cols, ThreadPool* pool);
void matmul_ref(DType type, const void* w, const float* x, float* y, int64_t n_tokens,
                int64_t rows, int64_t cols);

}  // namespace flashmem
