// Helpers shared by the fast kernel files; not part of the public kernel interface.
#pragma once
#include <cstdint>
#include <vector>

#include "tensor/dtype.h"
#include "util/thread_pool.h"

namespace flashmem::detail {

// An f32 activation row quantized to Q8_0 exactly like quantize_row_ref(Q8_0), split into arrays
// the SIMD dot products can load directly.
struct ActivationQ8 {
  std::vector<int8_t> qs;         // [n_blocks, 32] quantized values
  std::vector<float> d;           // [n_blocks] fp16-rounded block scales, as f32
  std::vector<int32_t> lane_sums; // [n_blocks, 8] sums of qs[4l .. 4l+3]: one per dpbusd lane
  std::vector<float> s;           // [n_blocks] fp16-rounded d·Σqs with d before its fp16
                                  // rounding: llama.cpp's Q8_1 block sum, for Q4_1/Q5_1 mins
  int64_t n_blocks = 0;
};

// x[n] -> out (n a multiple of 32); resizes out's arrays as needed (no allocation when reused).
void quantize_activation_q8(const float* x, int64_t n, ActivationQ8* out);

// Calls f.template operator()<N>() with N = n for n in [1, 8] (8 for larger n): a tile's token
// count as a template argument, for the batched kernels whose tiles hold up to 8 tokens.
template <typename F>
inline void with_tile_tokens(int n, F&& f) {
  switch (n) {
    case 1: return f.template operator()<1>();
    case 2: return f.template operator()<2>();
    case 3: return f.template operator()<3>();
    case 4: return f.template operator()<4>();
    case 5: return f.template operator()<5>();
    case 6: return f.template operator()<6>();
    case 7: return f.template operator()<7>();
    default: return f.template operator()<8>();
  }
}

// Which integer GEMM the build has: dpbusd (matmul_int8.cpp) or maddubs (matmul_int8_avx2.cpp).
#if defined(__AVX512F__) && defined(__AVX512BW__) && defined(__AVX512VNNI__)
#define FLASHMEM_INT8_GEMM_VNNI 1
#elif defined(__AVX2__) && defined(__FMA__) && defined(__F16C__)
#define FLASHMEM_INT8_GEMM_AVX2 1
#endif

// matmul for Q8_0/Q4_0 weights with integer block sums (AVX-512 VNNI and AVX2 builds); returns
// false, doing nothing, when the type or the build does not support it or n_tokens is too small
// to pay for packing.
bool matmul_int8(DType type, const void* w, const float* x, float* y, int64_t n_tokens, int64_t rows,
                 int64_t cols, ThreadPool* pool);

// matmul for K-quant weights (Q2_K .. Q6_K) from repacked panels (matmul_kquant_int8.cpp, AVX-512
// VNNI builds), bit-identical to matvec on every (row, token); returns false, doing nothing, when
// the type or the build does not support it or n_tokens is too small to pay for packing.
bool matmul_kquant_int8(DType type, const void* w, const float* x, float* y, int64_t n_tokens, int64_t rows,
                        int64_t cols, ThreadPool* pool);

}  // namespace flashmem::detail
