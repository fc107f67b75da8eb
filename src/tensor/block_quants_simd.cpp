// Fast dot products and dequantization for the block types of block_quants.h, AVX2 (AVX-512 builds
// run the same code). The 32-element types: weights unpacked to unsigned byte codes, multiplied
// with the int8 activations by maddubs (u8 × s8 -> int16 pairs) and summed with madd; signed
// codes are handled as unsigned code + offset, the offset taken back through the activation
// sums. Rows are taken 8 at a time, one per f32 lane (as the K-quant matvec does), so the
// horizontal sums are shared by 8 rows and the per-block f32 step is one vector sequence. Every
// block's integer sum is exactly the reference's, and the f32 arithmetic on it is the same up to
// one fused multiply-add. The K-quants' dot products are kquant_kernels.cpp's, their unpacking
// kquant_simd.h's.
#include <cstring>

#include "tensor/block_quants.h"
#include "tensor/convert.h"
#include "tensor/kquant_kernels.h"
#include "tensor/kquant_simd.h"
#include "tensor/simd.h"

namespace flashmem::detail {
namespace {

#if defined(__AVX2__) && defined(__F16C__) && defined(__FMA__)

using kquant::load256;
using kquant::transpose_sum;

inline int32_t hsum_i32(__m256i v) {
  __m128i s = _mm_add_epi32(_mm256_castsi256_si128(v), _mm256_extracti128_si256(v, 1));
  s = _mm_add_epi32(s, _mm_shuffle_epi32(s, 0x4e));  // swap 64-bit halves
  s = _mm_add_epi32(s, _mm_shuffle_epi32(s, 0xb1));  // swap 32-bit neighbours
  return _mm_cvtsi128_si32(s);
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

// The 32-element types against a Q8_0 activation block x: T::pairs(block, x) gives the 16 int16
// sums of adjacent code·x products (maddubs, u8 × s8; codes < 32 keep them below 2·31·128 <
// 2^15), whose total is Σ code·x; the code offset (kOffset) comes back through the activation
// sum, the min (kMin: w = d·code + m) through llama.cpp's fp16 block sum s.
struct Q41 {
  using Block = BlockQ4_1;
  static constexpr int kOffset = 0;
  static constexpr bool kMin = true;
  static __m256i pairs(const Block& b, const int8_t* x) { return _mm256_maddubs_epi16(block_nibbles(b.qs), load256(x)); }
};
struct Q51 {
  using Block = BlockQ5_1;
  static constexpr int kOffset = 0;
  static constexpr bool kMin = true;
  static __m256i pairs(const Block& b, const int8_t* x) {
    return _mm256_maddubs_epi16(_mm256_or_si256(block_nibbles(b.qs), fifth_bits(b.qh)), load256(x));
  }
};
struct Q50 {
  using Block = BlockQ5_0;
  static constexpr int kOffset = 16;  // codes are value + 16
  static constexpr bool kMin = false;
  static __m256i pairs(const Block& b, const int8_t* x) {
    return _mm256_maddubs_epi16(_mm256_or_si256(block_nibbles(b.qs), fifth_bits(b.qh)), load256(x));
  }
};
struct IQ4NL {
  using Block = BlockIQ4_NL;
  static constexpr int kOffset = 0;
  static constexpr bool kMin = false;
  // Codebook values w (signed): |w| · (x with w's sign), pair sums below 2·127·127 < 2^15 (no
  // codebook entry is 0).
  static __m256i pairs(const Block& b, const int8_t* x) {
    const __m128i table = _mm_loadu_si128(reinterpret_cast<const __m128i*>(kIq4nlValues));
    const __m256i w = _mm256_shuffle_epi8(_mm256_set_m128i(table, table), block_nibbles(b.qs));
    return _mm256_maddubs_epi16(_mm256_sign_epi8(w, w), _mm256_sign_epi8(load256(x), w));
  }
};

// 8 rows (lanes) against one activation; rows[i] may repeat a row, only the first n_valid
// outputs are written. Per block and lane the reference's f32 steps: sum += (d·dx)·isum (+ m·s).
template <typename T>
void q8_0_family_rows8(const typename T::Block* const* rows, const ActivationQ8& a, float* y, int n_valid) {
  const __m256i ones = _mm256_set1_epi16(1);
  __m256 acc = _mm256_setzero_ps();
  for (int64_t b = 0; b < a.n_blocks; ++b) {
    const int8_t* xq = a.qs.data() + b * kQ8Block;
    __m256i isum[8];                     // [row] 8 partial sums each
#pragma GCC unroll 8
    for (int r = 0; r < 8; ++r) {
      const auto& blk = rows[r][b];
      simd::prefetch_ahead(&blk);
      isum[r] = _mm256_madd_epi16(T::pairs(blk, xq), ones);
    }
    __m256i sums = transpose_sum(isum);
    if constexpr (T::kOffset != 0) {
      const int32_t x_sum = hsum_i32(load256(a.lane_sums.data() + b * 8));
      sums = _mm256_sub_epi32(sums, _mm256_set1_epi32(T::kOffset * x_sum));
    }
    // [row] the f16 scales (and mins) as f32
    const __m256 scale = _mm256_mul_ps(_mm256_cvtph_ps(simd::u16_lanes<8>([&](int r) { return rows[r][b].d; })),
                                       _mm256_set1_ps(a.d[static_cast<size_t>(b)]));
    __m256 term = _mm256_mul_ps(scale, _mm256_cvtepi32_ps(sums));
    if constexpr (T::kMin)
      term = _mm256_fmadd_ps(_mm256_cvtph_ps(simd::u16_lanes<8>([&](int r) { return rows[r][b].m; })),
                             _mm256_set1_ps(a.s[static_cast<size_t>(b)]), term);
    acc = _mm256_add_ps(acc, term);
  }
  kquant::store_lanes(y, acc, n_valid);
}

template <typename T>
void q8_0_family_rows(const uint8_t* w, size_t stride, const ActivationQ8& a, float* y, int64_t begin, int64_t end) {
  kquant::for_each_row_group<typename T::Block>(w, stride, begin, end, [&](const auto* rows, int64_t r, int n_valid) {
    q8_0_family_rows8<T>(rows, a, y + r, n_valid);
  });
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

void dot_block_quant_rows(DType type, const uint8_t* w, size_t stride, const QuantizedActivation& x,
                          int64_t cols, float* y, int64_t begin, int64_t end) {
#if defined(__AVX2__) && defined(__F16C__) && defined(__FMA__)
  (void)cols;  // the activation's block count gives the row length
  switch (type) {
    case DType::Q4_1: return q8_0_family_rows<Q41>(w, stride, x.q8, y, begin, end);
    case DType::Q5_0: return q8_0_family_rows<Q50>(w, stride, x.q8, y, begin, end);
    case DType::Q5_1: return q8_0_family_rows<Q51>(w, stride, x.q8, y, begin, end);
    case DType::IQ4_NL: return q8_0_family_rows<IQ4NL>(w, stride, x.q8, y, begin, end);
    default: return kquant_matvec_rows(type, w, stride, x.q8k, y, begin, end);
  }
#else
  for (int64_t r = begin; r < end; ++r) y[r] = dot_block_quant_ref(type, w + r * stride, x, cols);
#endif
}

}  // namespace flashmem::detail
