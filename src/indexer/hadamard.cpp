#include "indexer/hadamard.h"

#include <bit>
#include <cmath>

namespace flashmem {
namespace {

// 1/sqrt(128) = 2^-3.5, rounded to f32 once.
const float kHadamardScale = static_cast<float>(1.0 / std::sqrt(static_cast<double>(kHadamardDim)));

}  // namespace

void hadamard_128(float* x) {
  // Stage with stride `half` combines x[i] and x[i + half] inside blocks of 2·half; going from
  // half = 1 up to 64 builds the Sylvester ordering H_2n = [[H_n, H_n], [H_n, -H_n]].
  for (int half = 1; half < kHadamardDim; half *= 2) {
    for (int block = 0; block < kHadamardDim; block += 2 * half) {
      for (int i = block; i < block + half; ++i) {
        const float a = x[i], b = x[i + half];
        x[i] = a + b;
        x[i + half] = a - b;
      }
    }
  }
  for (int i = 0; i < kHadamardDim; ++i) x[i] *= kHadamardScale;
}

void hadamard_128_ref(float* x) {
  double y[kHadamardDim];
  for (int i = 0; i < kHadamardDim; ++i) {
    double sum = 0;
    for (int j = 0; j < kHadamardDim; ++j) {
      const bool negative = std::popcount(static_cast<unsigned>(i & j)) & 1;
      sum += negative ? -x[j] : x[j];
    }
    y[i] = sum / std::sqrt(static_cast<double>(kHadamardDim));
  }
  for (int i = 0; i < kHadamardDim; ++i) x[i] = static_cast<float>(y[i]);
}

}  // namespace flashmem
