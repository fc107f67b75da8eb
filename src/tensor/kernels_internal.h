// Helpers shared by the fast kernel files; not part of the public kernel interface.
#pragma once
#include <cstdint>
#include <vector>

#include "tensor/dtype.h"

namespace flashmem::detail {

// An f32 activation row quantized to Q8_0 exactly like quantize_row_ref(Q8_0), split into arrays
// the SIMD dot products can load directly.
struct ActivationQ8 {
  std::vector<int8_t> qs;         // [n_blocks, 32] quantized values
  std::vector<float> d;           // [n_blocks] fp16-rounded block scales, as f32
  std::vector<int32_t> lane_sums; // [n_blocks, 8] sums of qs[4l .. 4l+3]: one per dpbusd lane
  int64_t n_blocks = 0;
};

// x[n] -> out (n a multiple of 32); resizes out's arrays as needed (no allocation when reused).
void quantize_activation_q8(const float* x, int64_t n, ActivationQ8* out);

}  // namespace flashmem::detail
