// Fast dot products and dequantization for the block types of block_quants.h, AVX2 (AVX-512 builds
// run the same code). The 32-element types: weights unpacked to unsigned byte codes, multiplied
// with the int8 activations by maddubs (u8 × s8 -> int16 pairs) and summed with madd; signed
// codes are handled as unsigned code + offset, the offset taken back through the activation
// sums. Every block's integer sum is exactly the reference's, and the f32 arithmetic on it is the
// same. The K-quants' dot products are kquant_kernels.cpp's, their unpacking kquant_simd.h's.
#include <cstring>

#include "tensor/block_quants.h"
#include "tensor/convert.h"
#include "tensor/kquant_kernels.h"
#include "tensor/kquant_simd.h"
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

using kquant::load256;

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

// Σ u·x over a block of unsigned codes u < 32 (maddubs' pair sums stay below 2·31·128 < 2^15).
inline int32_t block_sum_u8(__m256i u, const int8_t* x) {
  return hsum_i32(_mm256_madd_epi16(_mm256_maddubs_epi16(u, load256(x)), _mm256_set1_epi16(1)));
}

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

// dst[16] = scale · (v - offset) + bias for 16 signed bytes v.
inline void dequantize16(__m128i v, int offset, float scale, float bias, float* dst) {
  const __m256i off = _mm256_set1_epi32(offset);
  for (int h = 0; h < 2; ++h) {
    const __m256i wide = _mm256_sub_epi32(_mm256_cvtepi8_epi32(h == 0 ? v : _mm_srli_si128(v, 8)), off);
    _mm256_storeu_ps(dst + 8 * h, _mm256_fmadd_ps(_mm256_set1_ps(scale), _mm256_cvtepi32_ps(wide), _mm256_set1_ps(bias)));
  }
}

void dequantize_k_family(DType type, const void* src, float* dst, int64_t n) {
  kquant::with_traits(type, [&]<typename T>() {
    const auto* blocks = static_cast<const typename T::Block*>(src);
    for (int64_t b = 0; b < n / kQKBlock; ++b) {
      const auto& blk = blocks[b];
      __m256i sc, m = _mm256_setzero_si256();
      T::scales(blk, &sc, &m);
      alignas(32) int16_t scales[16], mins[16];  // [group]
      _mm256_store_si256(reinterpret_cast<__m256i*>(scales), sc);
      _mm256_store_si256(reinterpret_cast<__m256i*>(mins), m);
      const float d = fp16_to_f32(blk.d), dmin = fp16_to_f32(T::dmin(blk));
      kquant::for_each_chunk([&](auto chunk) {
        constexpr int K = decltype(chunk)::value;
        const __m256i u = T::template chunk<K>(blk);
        for (int h = 0; h < 2; ++h) {
          const int g = 2 * K + h;
          const __m128i v = h == 0 ? _mm256_castsi256_si128(u) : _mm256_extracti128_si256(u, 1);
          dequantize16(v, T::kOffset, d * static_cast<float>(scales[g]), -(dmin * static_cast<float>(mins[g])),
                       dst + b * kQKBlock + 16 * g);
        }
      });
    }
  });
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
  float y;
  kquant_matvec_rows(type, static_cast<const uint8_t*>(row), 0, x.q8k, &y, 0, 1);
  return y;
#else
  return dot_block_quant_ref(type, row, x, cols);
#endif
}

}  // namespace flashmem::detail
