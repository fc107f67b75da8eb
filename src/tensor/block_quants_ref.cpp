// Scalar definitions for the block types of block_quants.h: dequantization straight from the
// layouts in dtype.h, and the integer dot products llama.cpp forms with quantized activations.
#include <algorithm>
#include <cmath>
#include <cstring>

#include "tensor/block_quants.h"
#include "tensor/convert.h"
#include "tensor/kernels.h"

namespace flashmem::detail {
namespace {

// The 5-bit code of element j (< 32) of a Q5_0/Q5_1 block.
int q5_code(const uint8_t* qs, const uint8_t* qh, int j) {
  uint32_t high;
  std::memcpy(&high, qh, 4);
  const int nibble = j < 16 ? qs[j] & 0x0f : qs[j - 16] >> 4;
  return nibble | static_cast<int>((high >> j) & 1u) << 4;
}

int nibble_code(const uint8_t* qs, int j) { return j < 16 ? qs[j] & 0x0f : qs[j - 16] >> 4; }

// 2-bit code of element i (< 256) of a Q2_K/Q3_K super-block.
int two_bit_code(const uint8_t* qs, int i) {
  const int half = i / 128, shift = 2 * ((i % 128) / 32), l = i % 32;
  return (qs[32 * half + l] >> shift) & 3;
}

// Signed 3-bit value of element i of a Q3_K block: the 2-bit code, minus 4 when its hmask bit
// is clear.
int q3_value(const BlockQ3_K& b, int i) {
  const int half = i / 128, sub = (i % 128) / 32, l = i % 32;
  const bool high = (b.hmask[l] >> (4 * half + sub)) & 1;
  return two_bit_code(b.qs, i) - (high ? 0 : 4);
}

// 4-bit code of element i (< 256) of a Q4_K/Q5_K super-block.
int k4_code(const uint8_t* qs, int i) {
  const int chunk = i / 64, k = (i % 64) / 32, l = i % 32;
  return (qs[32 * chunk + l] >> (4 * k)) & 0x0f;
}

int q5k_code(const BlockQ5_K& b, int i) { return k4_code(b.qs, i) | ((b.qh[i % 32] >> (i / 32)) & 1) << 4; }

// Unsigned 6-bit code of element i of a Q6_K block (the value is code - 32).
int q6_code(const BlockQ6_K& b, int i) {
  const int half = i / 128, k = (i % 128) / 32, l = i % 32;
  const uint8_t low_byte = b.ql[64 * half + l + 32 * (k & 1)];
  const int low = k < 2 ? low_byte & 0x0f : low_byte >> 4;
  const int high = (b.qh[32 * half + l] >> (2 * k)) & 3;
  return low | high << 4;
}

template <typename Block>
const Block* blocks_of(const void* p) {
  return static_cast<const Block*>(p);
}

}  // namespace

ActivationFormat activation_format(DType type) {
  switch (type) {
    case DType::Q8_0:
    case DType::Q4_0:
    case DType::Q4_1:
    case DType::Q5_0:
    case DType::Q5_1:
    case DType::IQ4_NL: return ActivationFormat::kQ8_0;
    case DType::Q2_K:
    case DType::Q3_K:
    case DType::Q4_K:
    case DType::Q5_K:
    case DType::Q6_K: return ActivationFormat::kQ8_K;
    default: return ActivationFormat::kFloat;
  }
}

bool is_block_quant(DType type) {
  return activation_format(type) != ActivationFormat::kFloat && type != DType::Q8_0 && type != DType::Q4_0;
}

void ActivationQ8K::resize(int64_t n) {
  n_blocks = n / kQKBlock;
  qs.resize(static_cast<size_t>(n));
  d.resize(static_cast<size_t>(n_blocks));
  bsums.resize(static_cast<size_t>(n / 16));
}

void quantize_activation_q8k(const float* x, int64_t n, ActivationQ8K* out) {
  out->resize(n);
  const int64_t n_blocks = out->n_blocks;
  for (int64_t b = 0; b < n_blocks; ++b) {
    const float* xb = x + b * kQKBlock;
    int8_t* qs = out->qs.data() + b * kQKBlock;
    float amax = 0.0f, max = 0.0f;  // largest magnitude and the signed value holding it
    for (int j = 0; j < kQKBlock; ++j) {
      if (std::fabs(xb[j]) > amax) {
        amax = std::fabs(xb[j]);
        max = xb[j];
      }
    }
    if (amax == 0.0f) {
      out->d[b] = 0.0f;
      std::memset(qs, 0, kQKBlock);
    } else {
      // -127 (not -128) as llama.cpp: the extreme value maps to -127 and no code overflows.
      const float iscale = -127.0f / max;
      for (int j = 0; j < kQKBlock; ++j)
        qs[j] = static_cast<int8_t>(std::min(127, static_cast<int>(std::nearbyint(iscale * xb[j]))));
      out->d[b] = 1.0f / iscale;
    }
    for (int g = 0; g < kQKBlock / 16; ++g) {
      int sum = 0;
      for (int j = 0; j < 16; ++j) sum += qs[16 * g + j];
      out->bsums[b * 16 + g] = static_cast<int16_t>(sum);
    }
  }
}

void quantize_activation(DType type, const float* x, int64_t n, QuantizedActivation* out) {
  switch (activation_format(type)) {
    case ActivationFormat::kQ8_0: quantize_activation_q8(x, n, &out->q8); return;
    case ActivationFormat::kQ8_K: quantize_activation_q8k(x, n, &out->q8k); return;
    case ActivationFormat::kFloat: return;
  }
}

void dequantize_block_quant_ref(DType type, const void* src, float* dst, int64_t n) {
  switch (type) {
    case DType::Q4_1:
      for (int64_t b = 0; b < n / kQ4Block; ++b) {
        const BlockQ4_1& blk = blocks_of<BlockQ4_1>(src)[b];
        const float d = fp16_to_f32(blk.d), m = fp16_to_f32(blk.m);
        for (int j = 0; j < kQ4Block; ++j) dst[b * kQ4Block + j] = d * nibble_code(blk.qs, j) + m;
      }
      return;
    case DType::Q5_0:
      for (int64_t b = 0; b < n / kQ4Block; ++b) {
        const BlockQ5_0& blk = blocks_of<BlockQ5_0>(src)[b];
        const float d = fp16_to_f32(blk.d);
        for (int j = 0; j < kQ4Block; ++j) dst[b * kQ4Block + j] = d * (q5_code(blk.qs, blk.qh, j) - 16);
      }
      return;
    case DType::Q5_1:
      for (int64_t b = 0; b < n / kQ4Block; ++b) {
        const BlockQ5_1& blk = blocks_of<BlockQ5_1>(src)[b];
        const float d = fp16_to_f32(blk.d), m = fp16_to_f32(blk.m);
        for (int j = 0; j < kQ4Block; ++j) dst[b * kQ4Block + j] = d * q5_code(blk.qs, blk.qh, j) + m;
      }
      return;
    case DType::IQ4_NL:
      for (int64_t b = 0; b < n / kQ4Block; ++b) {
        const BlockIQ4_NL& blk = blocks_of<BlockIQ4_NL>(src)[b];
        const float d = fp16_to_f32(blk.d);
        for (int j = 0; j < kQ4Block; ++j) dst[b * kQ4Block + j] = d * kIq4nlValues[nibble_code(blk.qs, j)];
      }
      return;
    case DType::Q2_K:
      for (int64_t b = 0; b < n / kQKBlock; ++b) {
        const BlockQ2_K& blk = blocks_of<BlockQ2_K>(src)[b];
        const float d = fp16_to_f32(blk.d), dmin = fp16_to_f32(blk.dmin);
        for (int i = 0; i < kQKBlock; ++i) {
          const uint8_t sc = blk.scales[i / 16];
          dst[b * kQKBlock + i] = d * (sc & 0x0f) * two_bit_code(blk.qs, i) - dmin * (sc >> 4);
        }
      }
      return;
    case DType::Q3_K:
      for (int64_t b = 0; b < n / kQKBlock; ++b) {
        const BlockQ3_K& blk = blocks_of<BlockQ3_K>(src)[b];
        const float d = fp16_to_f32(blk.d);
        for (int i = 0; i < kQKBlock; ++i) dst[b * kQKBlock + i] = d * q3_scale(blk, i / 16) * q3_value(blk, i);
      }
      return;
    case DType::Q4_K:
    case DType::Q5_K:
      for (int64_t b = 0; b < n / kQKBlock; ++b) {
        const bool five = type == DType::Q5_K;
        const uint8_t* scales = five ? blocks_of<BlockQ5_K>(src)[b].scales : blocks_of<BlockQ4_K>(src)[b].scales;
        const uint16_t d_bits = five ? blocks_of<BlockQ5_K>(src)[b].d : blocks_of<BlockQ4_K>(src)[b].d;
        const uint16_t dmin_bits = five ? blocks_of<BlockQ5_K>(src)[b].dmin : blocks_of<BlockQ4_K>(src)[b].dmin;
        const float d = fp16_to_f32(d_bits), dmin = fp16_to_f32(dmin_bits);
        for (int i = 0; i < kQKBlock; ++i) {
          int sc, m;
          k4_scale_min(scales, i / 32, &sc, &m);
          const int q = five ? q5k_code(blocks_of<BlockQ5_K>(src)[b], i) : k4_code(blocks_of<BlockQ4_K>(src)[b].qs, i);
          dst[b * kQKBlock + i] = d * static_cast<float>(sc) * static_cast<float>(q) - dmin * static_cast<float>(m);
        }
      }
      return;
    case DType::Q6_K:
      for (int64_t b = 0; b < n / kQKBlock; ++b) {
        const BlockQ6_K& blk = blocks_of<BlockQ6_K>(src)[b];
        const float d = fp16_to_f32(blk.d);
        for (int i = 0; i < kQKBlock; ++i)
          dst[b * kQKBlock + i] = d * static_cast<float>(blk.scales[i / 16]) * static_cast<float>(q6_code(blk, i) - 32);
      }
      return;
    default:
      std::fill(dst, dst + n, 0.0f);
  }
}

float dot_block_quant_ref(DType type, const void* row, const QuantizedActivation& x, int64_t cols) {
  float sum = 0.0f;
  if (activation_format(type) == ActivationFormat::kQ8_0) {
    const ActivationQ8& a = x.q8;
    for (int64_t b = 0; b < cols / kQ4Block; ++b) {
      const int8_t* xq = a.qs.data() + b * kQ8Block;
      int32_t isum = 0;
      switch (type) {
        case DType::Q4_1: {
          const BlockQ4_1& blk = blocks_of<BlockQ4_1>(row)[b];
          for (int j = 0; j < kQ4Block; ++j) isum += nibble_code(blk.qs, j) * xq[j];
          sum += fp16_to_f32(blk.d) * a.d[b] * static_cast<float>(isum) + fp16_to_f32(blk.m) * a.s[b];
          break;
        }
        case DType::Q5_0: {
          const BlockQ5_0& blk = blocks_of<BlockQ5_0>(row)[b];
          for (int j = 0; j < kQ4Block; ++j) isum += (q5_code(blk.qs, blk.qh, j) - 16) * xq[j];
          sum += fp16_to_f32(blk.d) * a.d[b] * static_cast<float>(isum);
          break;
        }
        case DType::Q5_1: {
          const BlockQ5_1& blk = blocks_of<BlockQ5_1>(row)[b];
          for (int j = 0; j < kQ4Block; ++j) isum += q5_code(blk.qs, blk.qh, j) * xq[j];
          sum += fp16_to_f32(blk.d) * a.d[b] * static_cast<float>(isum) + fp16_to_f32(blk.m) * a.s[b];
          break;
        }
        case DType::IQ4_NL: {
          const BlockIQ4_NL& blk = blocks_of<BlockIQ4_NL>(row)[b];
          for (int j = 0; j < kQ4Block; ++j) isum += kIq4nlValues[nibble_code(blk.qs, j)] * xq[j];
          sum += fp16_to_f32(blk.d) * a.d[b] * static_cast<float>(isum);
          break;
        }
        default: break;
      }
    }
    return sum;
  }
  const ActivationQ8K& a = x.q8k;
  for (int64_t b = 0; b < cols / kQKBlock; ++b) {
    const int8_t* xq = a.qs.data() + b * kQKBlock;
    const int16_t* bsums = a.bsums.data() + b * 16;
    int32_t isum = 0;  // Σ scale · Σ code · x over the sub-blocks
    int32_t msum = 0;  // Σ min · Σ x over the sub-blocks (types with mins)
    float d = 0.0f, dmin = 0.0f;
    switch (type) {
      case DType::Q2_K: {
        const BlockQ2_K& blk = blocks_of<BlockQ2_K>(row)[b];
        for (int i = 0; i < kQKBlock; ++i) isum += (blk.scales[i / 16] & 0x0f) * two_bit_code(blk.qs, i) * xq[i];
        for (int g = 0; g < 16; ++g) msum += (blk.scales[g] >> 4) * bsums[g];
        d = fp16_to_f32(blk.d);
        dmin = fp16_to_f32(blk.dmin);
        break;
      }
      case DType::Q3_K: {
        const BlockQ3_K& blk = blocks_of<BlockQ3_K>(row)[b];
        for (int i = 0; i < kQKBlock; ++i) isum += q3_scale(blk, i / 16) * q3_value(blk, i) * xq[i];
        d = fp16_to_f32(blk.d);
        break;
      }
      case DType::Q4_K:
      case DType::Q5_K: {
        const bool five = type == DType::Q5_K;
        const uint8_t* scales = five ? blocks_of<BlockQ5_K>(row)[b].scales : blocks_of<BlockQ4_K>(row)[b].scales;
        for (int i = 0; i < kQKBlock; ++i) {
          int sc, m;
          k4_scale_min(scales, i / 32, &sc, &m);
          const int q = five ? q5k_code(blocks_of<BlockQ5_K>(row)[b], i) : k4_code(blocks_of<BlockQ4_K>(row)[b].qs, i);
          isum += sc * q * xq[i];
        }
        for (int s = 0; s < 8; ++s) {
          int sc, m;
          k4_scale_min(scales, s, &sc, &m);
          msum += m * (bsums[2 * s] + bsums[2 * s + 1]);
        }
        d = fp16_to_f32(five ? blocks_of<BlockQ5_K>(row)[b].d : blocks_of<BlockQ4_K>(row)[b].d);
        dmin = fp16_to_f32(five ? blocks_of<BlockQ5_K>(row)[b].dmin : blocks_of<BlockQ4_K>(row)[b].dmin);
        break;
      }
      case DType::Q6_K: {
        const BlockQ6_K& blk = blocks_of<BlockQ6_K>(row)[b];
        for (int i = 0; i < kQKBlock; ++i) isum += blk.scales[i / 16] * (q6_code(blk, i) - 32) * xq[i];
        d = fp16_to_f32(blk.d);
        break;
      }
      default: break;
    }
    sum += a.d[b] * (d * static_cast<float>(isum) - dmin * static_cast<float>(msum));
  }
  return sum;
}

}  // namespace flashmem::detail
