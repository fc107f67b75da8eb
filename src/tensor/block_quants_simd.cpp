// Fast dot products and dequantization for the block types of block_quants.h, AVX2; AVX-512 builds sum the
// K-quant super-blocks two chunks per zmm step (scaled_code_sum) and keep the 32-element types
// on ymm (one block per register, each with its own f32 scale). The weights are unpacked to
// unsigned byte codes, multiplied with the int8 activations by maddubs (u8 × s8 -> int16 pairs)
// and weighted by their sub-block scales with madd (int16 × int16 -> int32). Signed codes are
// handled as unsigned code + offset, the offset taken back through the activation sums. Every
// block's integer sum is exactly the reference's, and the f32 arithmetic on it is the same.
#include <cstring>

#include "tensor/block_quants.h"
#include "tensor/convert.h"
#include "tensor/simd.h"

namespace flashmem::detail {
namespace {

#if defined(__AVX2__) && defined(__F16C__) && defined(__FMA__)

inline int32_t hsum_i32(__m256i v) {
  __m128i s = _mm_add_epi32(_mm256_castsi256_si128(v), _mm256_extracti128_si256(v, 1));
  s = _mm_add_epi32(s, _mm_shuffle_epi32(s, 0x4e));  // swap 64-bit halves
  s = _mm_add_epi32(s, _mm_shuffle_epi32(s, 0xb1));  // swap 32-bit neighbours
  return _mm_cvtsi128_si32(s);
}

// 8 int32 lanes of Σ u·x over 32 byte pairs, the first 16 pairs weighted by lo, the last 16 by
// hi. u < 64 keeps maddubs' pair sums below 2·63·127 < 2^15 (no saturation).
inline __m256i dot_scaled(__m256i u, __m256i x, __m256i scales) {
  return _mm256_madd_epi16(_mm256_maddubs_epi16(u, x), scales);
}
inline __m256i scale_pair(int lo, int hi) {
  return _mm256_set_m128i(_mm_set1_epi16(static_cast<int16_t>(hi)), _mm_set1_epi16(static_cast<int16_t>(lo)));
}

inline __m256i load256(const void* p) { return _mm256_loadu_si256(static_cast<const __m256i*>(p)); }

// Bits b..b+width-1 of every byte of v, as bytes (variable shift: srl on 16-bit lanes, then a mask
// that drops what crossed in from the neighbouring byte).
inline __m256i byte_bits(__m256i v, int shift, int mask) {
  return _mm256_and_si256(_mm256_srl_epi16(v, _mm_cvtsi32_si128(shift)), _mm256_set1_epi8(static_cast<char>(mask)));
}

// 32 nibbles of a 32-element block: elements 0-15 are the low nibbles of qs, 16-31 the high.
inline __m256i block_nibbles(const uint8_t* qs) {
  const __m128i packed = _mm_loadu_si128(reinterpret_cast<const __m128i*>(qs));
  return _mm256_and_si256(_mm256_set_m128i(_mm_srli_epi16(packed, 4), packed), _mm256_set1_epi8(0x0f));
}

// 0x10 in byte j where bit j of the 32-bit little-endian qh is set (Q5_0/Q5_1 fifth bits).
inline __m256i fifth_bits(const uint8_t* qh) {
  uint32_t bits;
  std::memcpy(&bits, qh, 4);
  // Byte j takes byte j / 8 of the word, then tests its bit j % 8.
  const __m256i spread = _mm256_shuffle_epi8(
      _mm256_set1_epi32(static_cast<int>(bits)),
      _mm256_set_epi64x(0x0303030303030303, 0x0202020202020202, 0x0101010101010101, 0x0000000000000000));
  const __m256i bit = _mm256_set1_epi64x(static_cast<int64_t>(0x8040201008040201));
  return _mm256_and_si256(_mm256_cmpeq_epi8(_mm256_and_si256(spread, bit), bit), _mm256_set1_epi8(0x10));
}

inline int32_t block_sum_u8(__m256i u, const int8_t* x) { return hsum_i32(dot_scaled(u, load256(x), _mm256_set1_epi16(1))); }

int32_t activation_sum(const ActivationQ8& a, int64_t b) {
  return hsum_i32(load256(a.lane_sums.data() + b * 8));
}

float dot_q8_0_family(DType type, const void* row, const ActivationQ8& a, int64_t cols) {
  float sum = 0.0f;
  for (int64_t b = 0; b < cols / kQ4Block; ++b) {
    const int8_t* xq = a.qs.data() + b * kQ8Block;
    switch (type) {
      case DType::Q4_1: {
        const auto& blk = static_cast<const BlockQ4_1*>(row)[b];
        const int32_t isum = block_sum_u8(block_nibbles(blk.qs), xq);
        sum += fp16_to_f32(blk.d) * a.d[b] * static_cast<float>(isum) + fp16_to_f32(blk.m) * a.s[b];
        break;
      }
      case DType::Q5_1: {
        const auto& blk = static_cast<const BlockQ5_1*>(row)[b];
        const int32_t isum = block_sum_u8(_mm256_or_si256(block_nibbles(blk.qs), fifth_bits(blk.qh)), xq);
        sum += fp16_to_f32(blk.d) * a.d[b] * static_cast<float>(isum) + fp16_to_f32(blk.m) * a.s[b];
        break;
      }
      case DType::Q5_0: {
        const auto& blk = static_cast<const BlockQ5_0*>(row)[b];
        // Codes are value + 16: subtract 16·Σx.
        const int32_t isum = block_sum_u8(_mm256_or_si256(block_nibbles(blk.qs), fifth_bits(blk.qh)), xq) -
                             16 * activation_sum(a, b);
        sum += fp16_to_f32(blk.d) * a.d[b] * static_cast<float>(isum);
        break;
      }
      case DType::IQ4_NL: {
        const auto& blk = static_cast<const BlockIQ4_NL*>(row)[b];
        const __m128i table = _mm_loadu_si128(reinterpret_cast<const __m128i*>(kIq4nlValues));
        const __m256i w = _mm256_shuffle_epi8(_mm256_set_m128i(table, table), block_nibbles(blk.qs));
        // |w| · (x with w's sign): pair sums stay below 2·127·127 < 2^15 (no codebook entry is 0).
        const __m256i pairs = _mm256_maddubs_epi16(_mm256_sign_epi8(w, w), _mm256_sign_epi8(load256(xq), w));
        const int32_t isum = hsum_i32(_mm256_madd_epi16(pairs, _mm256_set1_epi16(1)));
        sum += fp16_to_f32(blk.d) * a.d[b] * static_cast<float>(isum);
        break;
      }
      default: break;
    }
  }
  return sum;
}

// One K-quant super-block unpacked: chunk k of u holds the unsigned codes of elements
// 32k..32k+31, scales[g] the scale of elements 16g..16g+15.
struct SuperBlockCodes {
  __m256i u[8];
  alignas(32) int16_t scales[16];
};

// Σ_g scales[g] · Σ_{i in g} u_i·x_i over a super-block (exact in int32: |sum| < 256·63·127·128).
#if defined(__AVX512BW__)
// Two chunks per step: 64 byte pairs, the scales spread over the 32 int16 lanes by a permute
// (lane j of step k takes scale 2k + j / 8).
int32_t scaled_code_sum(const SuperBlockCodes& c, const int8_t* xq) {
  const __m512i scales = _mm512_castsi256_si512(_mm256_load_si256(reinterpret_cast<const __m256i*>(c.scales)));
  const __m512i lane_group = _mm512_srli_epi16(
      _mm512_set_epi16(31, 30, 29, 28, 27, 26, 25, 24, 23, 22, 21, 20, 19, 18, 17, 16, 15, 14, 13, 12, 11, 10, 9,
                       8, 7, 6, 5, 4, 3, 2, 1, 0),
      3);  // j / 8
  __m512i acc = _mm512_setzero_si512();
  for (int k = 0; k < 8; k += 2) {
    const __m512i u = _mm512_inserti64x4(_mm512_castsi256_si512(c.u[k]), c.u[k + 1], 1);
    const __m512i x = _mm512_loadu_si512(xq + 32 * k);
    const __m512i s = _mm512_permutexvar_epi16(_mm512_add_epi16(lane_group, _mm512_set1_epi16(static_cast<int16_t>(2 * k))), scales);
    acc = _mm512_add_epi32(acc, _mm512_madd_epi16(_mm512_maddubs_epi16(u, x), s));
  }
  return _mm512_reduce_add_epi32(acc);
}
#else
int32_t scaled_code_sum(const SuperBlockCodes& c, const int8_t* xq) {
  __m256i acc = _mm256_setzero_si256();
  for (int k = 0; k < 8; ++k)
    acc = _mm256_add_epi32(acc, dot_scaled(c.u[k], load256(xq + 32 * k), scale_pair(c.scales[2 * k], c.scales[2 * k + 1])));
  return hsum_i32(acc);
}
#endif

// One K-quant super-block unpacked to the common form
//   w_i = d · scales[g] · (u_i - offset) - dmin · mins[g]   (g = i / 16).
struct SuperBlock {
  SuperBlockCodes codes;
  alignas(32) int16_t mins[16];
  int offset = 0;
  float d = 0.0f, dmin = 0.0f;
};

SuperBlock unpack_q2_k(const BlockQ2_K& blk) {
  SuperBlock sb;
  for (int h = 0; h < 2; ++h) {
    const __m256i q = load256(blk.qs + 32 * h);
    for (int s = 0; s < 4; ++s) sb.codes.u[4 * h + s] = byte_bits(q, 2 * s, 3);
  }
  for (int g = 0; g < 16; ++g) {
    sb.codes.scales[g] = static_cast<int16_t>(blk.scales[g] & 0x0f);
    sb.mins[g] = static_cast<int16_t>(blk.scales[g] >> 4);
  }
  sb.d = fp16_to_f32(blk.d);
  sb.dmin = fp16_to_f32(blk.dmin);
  return sb;
}

SuperBlock unpack_q3_k(const BlockQ3_K& blk) {
  SuperBlock sb;
  const __m256i hmask = load256(blk.hmask);
  for (int h = 0; h < 2; ++h) {
    const __m256i q = load256(blk.qs + 32 * h);
    for (int s = 0; s < 4; ++s) {
      const int k = 4 * h + s;
      // Unsigned code u = low 2 bits + 4·hbit in [0, 7]; the value is u - 4.
      sb.codes.u[k] = _mm256_or_si256(byte_bits(q, 2 * s, 3), _mm256_slli_epi16(byte_bits(hmask, k, 1), 2));
    }
  }
  for (int g = 0; g < 16; ++g) {
    sb.codes.scales[g] = static_cast<int16_t>(q3_scale(blk, g));
    sb.mins[g] = 0;
  }
  sb.offset = 4;
  sb.d = fp16_to_f32(blk.d);
  return sb;
}

// Q4_K and Q5_K (qh == nullptr for Q4_K).
SuperBlock unpack_k4(uint16_t d, uint16_t dmin, const uint8_t* scales, const uint8_t* qs, const uint8_t* qh) {
  SuperBlock sb;
  for (int s = 0; s < 8; ++s) {
    int sc, m;
    k4_scale_min(scales, s, &sc, &m);
    sb.codes.scales[2 * s] = sb.codes.scales[2 * s + 1] = static_cast<int16_t>(sc);
    sb.mins[2 * s] = sb.mins[2 * s + 1] = static_cast<int16_t>(m);
  }
  const __m256i high = qh != nullptr ? load256(qh) : _mm256_setzero_si256();
  for (int s = 0; s < 8; ++s) {
    sb.codes.u[s] = byte_bits(load256(qs + 32 * (s / 2)), 4 * (s % 2), 0x0f);
    if (qh != nullptr) sb.codes.u[s] = _mm256_or_si256(sb.codes.u[s], _mm256_slli_epi16(byte_bits(high, s, 1), 4));
  }
  sb.d = fp16_to_f32(d);
  sb.dmin = fp16_to_f32(dmin);
  return sb;
}

SuperBlock unpack_q6_k(const BlockQ6_K& blk) {
  SuperBlock sb;
  for (int h = 0; h < 2; ++h) {
    const __m256i ql[2] = {load256(blk.ql + 64 * h), load256(blk.ql + 64 * h + 32)};
    const __m256i qh = load256(blk.qh + 32 * h);
    for (int k = 0; k < 4; ++k) {
      // Unsigned 6-bit code in [0, 63]; the value is code - 32.
      sb.codes.u[4 * h + k] = _mm256_or_si256(byte_bits(ql[k & 1], k < 2 ? 0 : 4, 0x0f),
                                              _mm256_slli_epi16(byte_bits(qh, 2 * k, 3), 4));
    }
  }
  for (int g = 0; g < 16; ++g) {
    sb.codes.scales[g] = blk.scales[g];
    sb.mins[g] = 0;
  }
  sb.offset = 32;
  sb.d = fp16_to_f32(blk.d);
  return sb;
}

// Super-block b of a K-quant row.
SuperBlock unpack_k(DType type, const void* row, int64_t b) {
  switch (type) {
    case DType::Q2_K: return unpack_q2_k(static_cast<const BlockQ2_K*>(row)[b]);
    case DType::Q3_K: return unpack_q3_k(static_cast<const BlockQ3_K*>(row)[b]);
    case DType::Q4_K: {
      const auto& blk = static_cast<const BlockQ4_K*>(row)[b];
      return unpack_k4(blk.d, blk.dmin, blk.scales, blk.qs, nullptr);
    }
    case DType::Q5_K: {
      const auto& blk = static_cast<const BlockQ5_K*>(row)[b];
      return unpack_k4(blk.d, blk.dmin, blk.scales, blk.qs, blk.qh);
    }
    default: return unpack_q6_k(static_cast<const BlockQ6_K*>(row)[b]);
  }
}

float dot_k_family(DType type, const void* row, const ActivationQ8K& a, int64_t cols) {
  float sum = 0.0f;
  for (int64_t b = 0; b < cols / kQKBlock; ++b) {
    const SuperBlock sb = unpack_k(type, row, b);
    const int16_t* bsums = a.bsums.data() + b * 16;
    // The offset comes back through the activation sums: Σ sc·(u - o)·x = Σ sc·u·x - o·Σ sc·Σx.
    int32_t offset_sum = 0, msum = 0;
    for (int g = 0; g < 16; ++g) {
      offset_sum += sb.codes.scales[g] * bsums[g];
      msum += sb.mins[g] * bsums[g];
    }
    const int32_t isum = scaled_code_sum(sb.codes, a.qs.data() + b * kQKBlock) - sb.offset * offset_sum;
    sum += a.d[b] * (sb.d * static_cast<float>(isum) - sb.dmin * static_cast<float>(msum));
  }
  return sum;
}

// dst[16] = scale · (v - offset) + bias for 16 signed bytes v.
inline void dequantize16(__m128i v, int offset, float scale, float bias, float* dst) {
  const __m256i off = _mm256_set1_epi32(offset);
  for (int h = 0; h < 2; ++h) {
    const __m256i wide = _mm256_sub_epi32(_mm256_cvtepi8_epi32(h == 0 ? v : _mm_srli_si128(v, 8)), off);
    _mm256_storeu_ps(dst + 8 * h, _mm256_fmadd_ps(_mm256_set1_ps(scale), _mm256_cvtepi32_ps(wide), _mm256_set1_ps(bias)));
  }
}

void dequantize_k_family(DType type, const void* src, float* dst, int64_t n) {
  for (int64_t b = 0; b < n / kQKBlock; ++b) {
    const SuperBlock sb = unpack_k(type, src, b);
    for (int k = 0; k < 8; ++k) {
      for (int h = 0; h < 2; ++h) {
        const int g = 2 * k + h;
        const __m128i v = h == 0 ? _mm256_castsi256_si128(sb.codes.u[k]) : _mm256_extracti128_si256(sb.codes.u[k], 1);
        dequantize16(v, sb.offset, sb.d * static_cast<float>(sb.codes.scales[g]),
                     -(sb.dmin * static_cast<float>(sb.mins[g])), dst + b * kQKBlock + 16 * g);
      }
    }
  }
}

void dequantize_q8_0_family(DType type, const void* src, float* dst, int64_t n) {
  const __m128i table = _mm_loadu_si128(reinterpret_cast<const __m128i*>(kIq4nlValues));
  for (int64_t b = 0; b < n / kQ4Block; ++b) {
    __m256i v;  // 32 codes or values as signed bytes
    int offset = 0;
    float d, bias = 0.0f;
    switch (type) {
      case DType::Q4_1: {
        const auto& blk = static_cast<const BlockQ4_1*>(src)[b];
        v = block_nibbles(blk.qs);
        d = fp16_to_f32(blk.d);
        bias = fp16_to_f32(blk.m);
        break;
      }
      case DType::Q5_1: {
        const auto& blk = static_cast<const BlockQ5_1*>(src)[b];
        v = _mm256_or_si256(block_nibbles(blk.qs), fifth_bits(blk.qh));
        d = fp16_to_f32(blk.d);
        bias = fp16_to_f32(blk.m);
        break;
      }
      case DType::Q5_0: {
        const auto& blk = static_cast<const BlockQ5_0*>(src)[b];
        v = _mm256_or_si256(block_nibbles(blk.qs), fifth_bits(blk.qh));
        offset = 16;
        d = fp16_to_f32(blk.d);
        break;
      }
      default: {
        const auto& blk = static_cast<const BlockIQ4_NL*>(src)[b];
        v = _mm256_shuffle_epi8(_mm256_set_m128i(table, table), block_nibbles(blk.qs));
        d = fp16_to_f32(blk.d);
        break;
      }
    }
    dequantize16(_mm256_castsi256_si128(v), offset, d, bias, dst + b * kQ4Block);
    dequantize16(_mm256_extracti128_si256(v, 1), offset, d, bias, dst + b * kQ4Block + 16);
  }
}

#endif

}  // namespace

void dequantize_block_quant(DType type, const void* src, float* dst, int64_t n) {
#if defined(__AVX2__) && defined(__F16C__) && defined(__FMA__)
  if (activation_format(type) == ActivationFormat::kQ8_0) return dequantize_q8_0_family(type, src, dst, n);
  return dequantize_k_family(type, src, dst, n);
#else
  dequantize_block_quant_ref(type, src, dst, n);
#endif
}

float dot_block_quant(DType type, const void* row, const QuantizedActivation& x, int64_t cols) {
#if defined(__AVX2__) && defined(__F16C__) && defined(__FMA__)
  if (activation_format(type) == ActivationFormat::kQ8_0) return dot_q8_0_family(type, row, x.q8, cols);
  return dot_k_family(type, row, x.q8k, cols);
#else
  return dot_block_quant_ref(type, row, x, cols);
#endif
}

}  // namespace flashmem::detail
