// The llama.cpp block types beyond Q8_0/Q4_0 (Q4_1, Q5_0, Q5_1, IQ4_NL and the K-quants Q2_K ..
// Q6_K): conversion to and from f32 and their integer dot products with quantized activations.
// Internal to tensor/; kernels.h's dequantize_row/quantize_row/matvec/matmul dispatch here.
//
// Dot products follow llama.cpp's scheme, so results match its CPU backend up to f32 summation
// order: Q5_0 and IQ4_NL weights meet Q8_0 activations; Q4_1 and Q5_1 meet Q8_0 activations plus
// the block sum s = fp16(d·Σq) (llama.cpp's Q8_1, whose codes are Q8_0's); K-quants meet Q8_K
// activations (one f32 scale per 256 elements and sums of every 16 codes).
#pragma once
#include <cstdint>
#include <vector>

#include "tensor/dtype.h"
#include "tensor/kernels_internal.h"

namespace flashmem::detail {

// The activation format a weight type's dot product takes.
enum class ActivationFormat { kFloat, kQ8_0, kQ8_K };
ActivationFormat activation_format(DType type);

// True for the types this file handles.
bool is_block_quant(DType type);

// An f32 activation row quantized like llama.cpp's quantize_row_q8_K: per 256 elements,
// d = max/-127 by the signed value of largest magnitude, q = round-half-even(x/d) capped at 127.
struct ActivationQ8K {
  std::vector<int8_t> qs;      // [n_blocks, 256] codes
  std::vector<float> d;        // [n_blocks] f32 scales
  std::vector<int16_t> bsums;  // [n_blocks, 16] sums of each 16 consecutive codes
  int64_t n_blocks = 0;
  // Sizes the arrays for n elements (a multiple of 256); no allocation when reused.
  void resize(int64_t n);
};
// x[n] -> out (n a multiple of 256); resizes out's arrays as needed.
void quantize_activation_q8k(const float* x, int64_t n, ActivationQ8K* out);

// The quantized activation of one row, in the format activation_format(type) names (the
// other member may be empty).
struct QuantizedActivation {
  ActivationQ8 q8;
  ActivationQ8K q8k;
};
// Quantizes x[n] into out in the format `type` needs (nothing for kFloat).
void quantize_activation(DType type, const float* x, int64_t n, QuantizedActivation* out);

// Unbiased 6-bit scale g (< 16) of a Q3_K block, in [-32, 31] (layout in dtype.h).
inline int q3_scale(const BlockQ3_K& b, int g) {
  const int low = g < 8 ? b.scales[g] & 0x0f : b.scales[g - 8] >> 4;
  const int high = (b.scales[8 + g % 4] >> (2 * (g / 4))) & 3;
  return (low | high << 4) - 32;
}

// 6-bit (scale, min) of sub-block s (< 8) of a Q4_K/Q5_K block from its 12 packed bytes.
inline void k4_scale_min(const uint8_t* scales, int s, int* sc, int* m) {
  if (s < 4) {
    *sc = scales[s] & 63;
    *m = scales[s + 4] & 63;
  } else {
    *sc = (scales[s + 4] & 0x0f) | (scales[s - 4] >> 6) << 4;
    *m = (scales[s + 4] >> 4) | (scales[s] >> 6) << 4;
  }
}

// Scalar definitions (the contract every fast path meets).
void dequantize_block_quant_ref(DType type, const void* src, float* dst, int64_t n);
// Simple round-to-nearest quantizers (not llama.cpp's error-minimising searches): per block,
// scales from the block's range, sub-block scales rounded to their bit width, codes rounded to
// the nearest level. Good enough for round-trip tests and random models.
void quantize_block_quant_ref(DType type, const float* src, void* dst, int64_t n);
// Σ over the row of weight·activation in llama.cpp's integer scheme; cols = row length.
float dot_block_quant_ref(DType type, const void* row, const QuantizedActivation& x, int64_t cols);

// Fast paths (block_quants_simd.cpp; the reference where the build has no AVX2). dot: the same
// integer sums per block as the reference and the same f32 operations on them, equal up to where
// a multiply-add is fused (one rounding per block). dequantize: the same values up to such a
// fused multiply-add (1 ulp).
void dequantize_block_quant(DType type, const void* src, float* dst, int64_t n);
// y[r] = dot of row r of W (rows `stride` bytes apart, `cols` long) with x, for r in
// [begin, end). Each row's result is the same whatever range it falls in (rows share the vector
// lanes but not their arithmetic), so callers may split and group rows freely.
void dot_block_quant_rows(DType type, const uint8_t* w, size_t stride, const QuantizedActivation& x,
                          int64_t cols, float* y, int64_t begin, int64_t end);

}  // namespace flashmem::detail
