// Scalar reference kernels: plain loops that define what every fast path must compute.
#include <algorithm>
#include <cmath>
#include <cstring>
#include <vector>

#include "tensor/block_quants.h"
#include "tensor/convert.h"
#include "tensor/kernels.h"

namespace flashmem {
namespace {

void quantize_block_q8_0_ref(const float* x, BlockQ8_0* block) {
  float amax = 0.0f;
  for (int j = 0; j < kQ8Block; ++j) amax = std::max(amax, std::fabs(x[j]));
  const float d = amax / 127.0f;
  const float id = d != 0.0f ? 1.0f / d : 0.0f;
  block->d = f32_to_fp16(d);
  for (int j = 0; j < kQ8Block; ++j) block->qs[j] = static_cast<int8_t>(std::roundf(x[j] * id));
}

void quantize_block_q4_0_ref(const float* x, BlockQ4_0* block) {
  float amax = 0.0f;
  float max = 0.0f;  // the value of largest magnitude, with its sign
  for (int j = 0; j < kQ4Block; ++j) {
    if (amax < std::fabs(x[j])) {
      amax = std::fabs(x[j]);
      max = x[j];
    }
  }
  const float d = max / -8.0f;
  const float id = d != 0.0f ? 1.0f / d : 0.0f;
  block->d = f32_to_fp16(d);
  for (int j = 0; j < kQ4Block / 2; ++j) {
    const int lo = std::min(15, static_cast<int>(static_cast<int8_t>(x[j] * id + 8.5f)));
    const int hi =
        std::min(15, static_cast<int>(static_cast<int8_t>(x[j + kQ4Block / 2] * id + 8.5f)));
    block->qs[j] = static_cast<uint8_t>(lo | (hi << 4));
  }
}

// Σ_blocks fp16(d_w)·fp16(d_x)·Σ_i q_w·q_x over one weight row and the Q8_0 activation.
float dot_q8_0_ref(const BlockQ8_0* w, const BlockQ8_0* x, int64_t n_blocks) {
  float sum = 0.0f;
  for (int64_t b = 0; b < n_blocks; ++b) {
    int32_t isum = 0;
    for (int j = 0; j < kQ8Block; ++j) isum += w[b].qs[j] * x[b].qs[j];
    sum += fp16_to_f32(w[b].d) * fp16_to_f32(x[b].d) * static_cast<float>(isum);
  }
  return sum;
}

float dot_q4_0_ref(const BlockQ4_0* w, const BlockQ8_0* x, int64_t n_blocks) {
  float sum = 0.0f;
  for (int64_t b = 0; b < n_blocks; ++b) {
    int32_t isum = 0;
    for (int j = 0; j < kQ4Block / 2; ++j) {
      isum += ((w[b].qs[j] & 0x0f) - 8) * x[b].qs[j];
      isum += ((w[b].qs[j] >> 4) - 8) * x[b].qs[j + kQ4Block / 2];
    }
    sum += fp16_to_f32(w[b].d) * fp16_to_f32(x[b].d) * static_cast<float>(isum);
  }
  return sum;
}

}  // namespace

void dequantize_row_ref(DType type, const void* src, float* dst, int64_t n) {
  switch (type) {
    case DType::F32:
      std::memcpy(dst, src, static_cast<size_t>(n) * 4);
      return;
    case DType::F16: {
      const auto* h = static_cast<const uint16_t*>(src);
      for (int64_t i = 0; i < n; ++i) dst[i] = fp16_to_f32(h[i]);
      return;
    }
    case DType::BF16: {
      const auto* h = static_cast<const uint16_t*>(src);
      for (int64_t i = 0; i < n; ++i) dst[i] = bf16_to_f32(h[i]);
      return;
    }
    case DType::Q8_0: {
      const auto* blocks = static_cast<const BlockQ8_0*>(src);
      for (int64_t b = 0; b < n / kQ8Block; ++b) {
        const float d = fp16_to_f32(blocks[b].d);
        for (int j = 0; j < kQ8Block; ++j) dst[b * kQ8Block + j] = d * blocks[b].qs[j];
      }
      return;
    }
    case DType::Q4_0: {
      const auto* blocks = static_cast<const BlockQ4_0*>(src);
      for (int64_t b = 0; b < n / kQ4Block; ++b) {
        const float d = fp16_to_f32(blocks[b].d);
        for (int j = 0; j < kQ4Block / 2; ++j) {
          dst[b * kQ4Block + j] = d * ((blocks[b].qs[j] & 0x0f) - 8);
          dst[b * kQ4Block + j + kQ4Block / 2] = d * ((blocks[b].qs[j] >> 4) - 8);
        }
      }
      return;
    }
    default:
      if (detail::is_block_quant(type)) {
        detail::dequantize_block_quant_ref(type, src, dst, n);
      } else {
        std::fill(dst, dst + n, 0.0f);
      }
  }
}

void quantize_row_ref(DType type, const float* src, void* dst, int64_t n) {
  switch (type) {
    case DType::F32:
      std::memcpy(dst, src, static_cast<size_t>(n) * 4);
      return;
    case DType::F16: {
      auto* h = static_cast<uint16_t*>(dst);
      for (int64_t i = 0; i < n; ++i) h[i] = f32_to_fp16(src[i]);
      return;
    }
    case DType::BF16: {
      auto* h = static_cast<uint16_t*>(dst);
      for (int64_t i = 0; i < n; ++i) h[i] = f32_to_bf16(src[i]);
      return;
    }
    case DType::Q8_0: {
      auto* blocks = static_cast<BlockQ8_0*>(dst);
      for (int64_t b = 0; b < n / kQ8Block; ++b) quantize_block_q8_0_ref(src + b * kQ8Block, &blocks[b]);
      return;
    }
    case DType::Q4_0: {
      auto* blocks = static_cast<BlockQ4_0*>(dst);
      for (int64_t b = 0; b < n / kQ4Block; ++b) quantize_block_q4_0_ref(src + b * kQ4Block, &blocks[b]);
      return;
    }
    default:
      if (detail::is_block_quant(type)) detail::quantize_block_quant_ref(type, src, dst, n);
      return;
  }
}

float dot_f32_ref(const float* a, const float* b, int64_t n) {
  float sum = 0.0f;
  for (int64_t i = 0; i < n; ++i) sum += a[i] * b[i];
  return sum;
}

float dot_f16_f32_ref(const uint16_t* a, const float* b, int64_t n) {
  float sum = 0.0f;
  for (int64_t i = 0; i < n; ++i) sum += fp16_to_f32(a[i]) * b[i];
  return sum;
}

void axpy_f32_ref(float alpha, const float* x, float* y, int64_t n) {
  for (int64_t i = 0; i < n; ++i) y[i] += alpha * x[i];
}

void axpy_f16_ref(float alpha, const uint16_t* x, float* y, int64_t n) {
  for (int64_t i = 0; i < n; ++i) y[i] += alpha * fp16_to_f32(x[i]);
}

void dot_f16_f32_heads_ref(const uint16_t* k, const float* q, int64_t n_q, int64_t n, float* out) {
  for (int64_t g = 0; g < n_q; ++g) out[g] = dot_f16_f32_ref(k, q + g * n, n);
}

void rms_norm_ref(const float* x, const float* weight, float* y, int64_t n, float eps) {
  float sum_sq = 0.0f;
  for (int64_t i = 0; i < n; ++i) sum_sq += x[i] * x[i];
  const float scale = 1.0f / std::sqrt(sum_sq / static_cast<float>(n) + eps);
  for (int64_t i = 0; i < n; ++i) y[i] = x[i] * scale * weight[i];
}

void matvec_ref(DType type, const void* w, const float* x, float* y, int64_t rows, int64_t cols) {
  const auto* base = static_cast<const uint8_t*>(w);
  const size_t stride = row_bytes(type, cols);
  if (type == DType::Q8_0 || type == DType::Q4_0) {
    std::vector<BlockQ8_0> xq(static_cast<size_t>(cols / kQ8Block));  // [cols / 32]
    quantize_row_ref(DType::Q8_0, x, xq.data(), cols);
    for (int64_t r = 0; r < rows; ++r) {
      const uint8_t* row = base + r * stride;
      y[r] = type == DType::Q8_0
                 ? dot_q8_0_ref(reinterpret_cast<const BlockQ8_0*>(row), xq.data(), cols / kQ8Block)
                 : dot_q4_0_ref(reinterpret_cast<const BlockQ4_0*>(row), xq.data(), cols / kQ4Block);
    }
    return;
  }
  if (detail::is_block_quant(type)) {
    detail::QuantizedActivation xa;
    detail::quantize_activation(type, x, cols, &xa);
    for (int64_t r = 0; r < rows; ++r) y[r] = detail::dot_block_quant_ref(type, base + r * stride, xa, cols);
    return;
  }
  std::vector<float> row_f32(static_cast<size_t>(cols));  // [cols]
  for (int64_t r = 0; r < rows; ++r) {
    dequantize_row_ref(type, base + r * stride, row_f32.data(), cols);
    y[r] = dot_f32_ref(row_f32.data(), x, cols);
  }
}

void matmul_ref(DType type, const void* w, const float* x, float* y, int64_t n_tokens,
                int64_t rows, int64_t cols) {
  for (int64_t t = 0; t < n_tokens; ++t) matvec_ref(type, w, x + t * cols, y + t * rows, rows, cols);
}

}  // namespace flashmem
