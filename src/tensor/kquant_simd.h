// AVX2 unpacking of the K-quant super-blocks (Q2_K .. Q6_K, layouts in dtype.h) into one common
// form, shared by their dot products (kquant_kernels.cpp) and dequantization
// (block_quants_simd.cpp):
//   w_i = d · sc_g · (u_i - kOffset) - dmin · m_g      (g = i / 16, u_i an unsigned code < 64)
// Per type T: T::chunk<K>(block) gives the codes u of elements 32K..32K+31 as bytes (K < 8, a
// compile-time constant so every shift is an immediate), T::scales(block, &sc, &m) the 16 sc_g
// and 16 m_g as int16 lanes (m only when kMins), T::d / T::dmin the fp16 super-block scales.
// Also the row grouping both matvec kernels share (8 rows in the f32 lanes). Internal to
// tensor/; included only where the build has AVX2 + FMA + F16C.
#pragma once
#include <bit>
#include <cstdint>
#include <cstring>
#include <utility>

#include "tensor/block_quants.h"
#include "tensor/dtype.h"
#include "tensor/simd.h"

#if defined(__AVX2__) && defined(__FMA__) && defined(__F16C__)

namespace flashmem::detail::kquant {

// On a lambda, after its parameter list (GCC takes the GNU spelling there; the standard
// attribute would apply to the lambda's type and be ignored).
#define FLASHMEM_KQUANT_INLINE __attribute__((always_inline))

inline __m256i load256(const void* p) { return _mm256_loadu_si256(static_cast<const __m256i*>(p)); }

// Lane j of the result is the sum of the 8 int32 lanes of v[j]: hadd pairs the vectors within
// each 128-bit half, twice, and the two halves are then added.
inline __m256i transpose_sum(const __m256i* v) {
  const __m256i h0 = _mm256_hadd_epi32(_mm256_hadd_epi32(v[0], v[1]), _mm256_hadd_epi32(v[2], v[3]));
  const __m256i h1 = _mm256_hadd_epi32(_mm256_hadd_epi32(v[4], v[5]), _mm256_hadd_epi32(v[6], v[7]));
  return _mm256_add_epi32(_mm256_permute2x128_si256(h0, h1, 0x20), _mm256_permute2x128_si256(h0, h1, 0x31));
}

// Calls rows8(rows, r, n_valid) for each group of 8 rows r.. of [begin, end) of W (rows `stride`
// bytes apart): rows[i] is row r + i, rows past the range repeat the last one, and only the
// first n_valid lanes of such a group are to be stored (store_lanes).
template <typename Block, typename F>
[[gnu::always_inline]] inline void for_each_row_group(const uint8_t* w, size_t stride, int64_t begin, int64_t end,
                                                      F&& rows8) {
  for (int64_t r = begin; r < end; r += 8) {
    const int n_valid = static_cast<int>(end - r < 8 ? end - r : 8);
    const Block* rows[8];  // [lane]
    for (int i = 0; i < 8; ++i) rows[i] = reinterpret_cast<const Block*>(w + (r + (i < n_valid ? i : n_valid - 1)) * stride);
    rows8(rows, r, n_valid);
  }
}

// The first n (<= 8) lanes of v to y.
inline void store_lanes(float* y, __m256 v, int n) {
  if (n == 8) {
    _mm256_storeu_ps(y, v);
  } else {
    _mm256_maskstore_ps(y, simd::lane_mask(n), v);
  }
}

// Bit `from` of every byte of v moved to bit `to`, every other bit cleared (16-bit shifts; the
// mask drops what crossed in from the neighbouring byte).
template <int From, int To>
inline __m256i move_bit(__m256i v) {
  const __m256i mask = _mm256_set1_epi8(static_cast<char>(1 << To));
  if constexpr (From > To) return _mm256_and_si256(_mm256_srli_epi16(v, From - To), mask);
  if constexpr (From < To) return _mm256_and_si256(_mm256_slli_epi16(v, To - From), mask);
  return _mm256_and_si256(v, mask);
}

// Bits shift..shift+width-1 of every byte of v, as bytes.
template <int Shift, int Mask>
inline __m256i byte_field(__m256i v) {
  const __m256i mask = _mm256_set1_epi8(static_cast<char>(Mask));
  if constexpr (Shift == 0) return _mm256_and_si256(v, mask);
  return _mm256_and_si256(_mm256_srli_epi16(v, Shift), mask);
}

// Q2_K: 2-bit codes, 4-bit scale and min per 16 elements.
struct Q2K {
  using Block = BlockQ2_K;
  static constexpr int kOffset = 0;
  static constexpr bool kMins = true;
  template <int K>
  static __m256i chunk(const Block& b) {
    return byte_field<2 * (K % 4), 3>(load256(b.qs + 32 * (K / 4)));
  }
  static void scales(const Block& b, __m256i* sc, __m256i* m) {
    const __m128i bytes = _mm_loadu_si128(reinterpret_cast<const __m128i*>(b.scales));
    const __m128i low = _mm_set1_epi8(0x0f);
    *sc = _mm256_cvtepu8_epi16(_mm_and_si128(bytes, low));
    *m = _mm256_cvtepu8_epi16(_mm_and_si128(_mm_srli_epi16(bytes, 4), low));
  }
  static uint16_t dmin(const Block& b) { return b.dmin; }
};

// Q3_K: 2 low bits + a high bit (u = low + 4·h in [0, 7], value u - 4), 6-bit signed scales.
struct Q3K {
  using Block = BlockQ3_K;
  static constexpr int kOffset = 4;
  static constexpr bool kMins = false;
  template <int K>
  static __m256i chunk(const Block& b) {
    return _mm256_or_si256(byte_field<2 * (K % 4), 3>(load256(b.qs + 32 * (K / 4))), move_bit<K, 2>(load256(b.hmask)));
  }
  // q3_scale (block_quants.h) for all 16 groups on 32-bit words: word w of bytes 0-7 holds the
  // low nibbles of groups 4w..4w+3 (w < 2) or, in its high nibbles, of groups 8 + 4(w - 2)..;
  // bits 2v, 2v+1 of bytes 8-11 are the top bits of groups 4v..4v+3.
  static void scales(const Block& b, __m256i* sc, __m256i* /*m*/) {
    uint32_t w[3];
    std::memcpy(w, b.scales, sizeof(w));
    const uint32_t nibble = 0x0f0f0f0f, two = 0x03030303;
    const __m128i bytes = _mm_setr_epi32(static_cast<int>((w[0] & nibble) | (w[2] & two) << 4),
                                         static_cast<int>((w[1] & nibble) | (w[2] >> 2 & two) << 4),
                                         static_cast<int>((w[0] >> 4 & nibble) | (w[2] >> 4 & two) << 4),
                                         static_cast<int>((w[1] >> 4 & nibble) | (w[2] >> 6 & two) << 4));
    *sc = _mm256_sub_epi16(_mm256_cvtepu8_epi16(bytes), _mm256_set1_epi16(32));  // stored with +32
  }
  static uint16_t dmin(const Block& /*b*/) { return 0; }
};

// Q4_K and Q5_K: the 12 packed bytes of 8 6-bit (scale, min) pairs (layout in dtype.h), unpacked
// as 32-bit words w0, w1, w2: bytes 0-3 hold sc 0-3 and the top bits of sc 4-7, bytes 4-7 m 0-3
// and the top bits of m 4-7, bytes 8-11 the low nibbles of sc 4-7 and m 4-7. The words are
// unpacked side by side in one vector (about half the operations of scalar words). `packed` is
// read 16 bytes wide: the 4 bytes after the 12 belong to the same block and are not used.
inline void k4_scales(const uint8_t* packed, __m256i* sc, __m256i* m) {
  const __m128i w = _mm_loadu_si128(reinterpret_cast<const __m128i*>(packed));  // dwords w0, w1, w2, -
  const __m128i low6 = _mm_and_si128(w, _mm_set1_epi8(0x3f));  // dwords: sc 0-3, m 0-3
  // dwords 0, 1: the low nibbles of w2 (sc 4-7), its high nibbles (m 4-7), each with the top 2 bits
  // of w0 (sc) or w1 (m) above them
  const __m128i w2 = _mm_srlv_epi32(_mm_shuffle_epi32(w, _MM_SHUFFLE(2, 2, 2, 2)), _mm_setr_epi32(0, 4, 0, 0));
  const __m128i high = _mm_or_si128(_mm_and_si128(w2, _mm_set1_epi8(0x0f)),
                                    _mm_srli_epi32(_mm_and_si128(w, _mm_set1_epi8(static_cast<char>(0xc0))), 2));
  const __m128i bytes = _mm_unpacklo_epi32(low6, high);  // sc 0-7 in bytes 0-7, m 0-7 in bytes 8-15
  // each byte (one per 32-element sub-block) as an int16 lane for each of its two groups of 16
  *sc = _mm256_cvtepu8_epi16(_mm_unpacklo_epi8(bytes, bytes));
  *m = _mm256_cvtepu8_epi16(_mm_unpackhi_epi8(bytes, bytes));
}

struct Q4K {
  using Block = BlockQ4_K;
  static constexpr int kOffset = 0;
  static constexpr bool kMins = true;
  template <int K>
  static __m256i chunk(const Block& b) {
    return byte_field<4 * (K % 2), 0x0f>(load256(b.qs + 32 * (K / 2)));
  }
  static void scales(const Block& b, __m256i* sc, __m256i* m) { k4_scales(b.scales, sc, m); }
  static uint16_t dmin(const Block& b) { return b.dmin; }
};

struct Q5K {
  using Block = BlockQ5_K;
  static constexpr int kOffset = 0;
  static constexpr bool kMins = true;
  template <int K>
  static __m256i chunk(const Block& b) {
    return _mm256_or_si256(byte_field<4 * (K % 2), 0x0f>(load256(b.qs + 32 * (K / 2))), move_bit<K, 4>(load256(b.qh)));
  }
  static void scales(const Block& b, __m256i* sc, __m256i* m) { k4_scales(b.scales, sc, m); }
  static uint16_t dmin(const Block& b) { return b.dmin; }
};

// Q6_K: 4 low bits + 2 high bits (u in [0, 63], value u - 32), int8 scales.
struct Q6K {
  using Block = BlockQ6_K;
  static constexpr int kOffset = 32;
  static constexpr bool kMins = false;
  template <int K>
  static __m256i chunk(const Block& b) {
    constexpr int h = K / 4, k = K % 4;
    const __m256i low = byte_field<(k < 2 ? 0 : 4), 0x0f>(load256(b.ql + 64 * h + 32 * (k & 1)));
    const __m256i qh = load256(b.qh + 32 * h);
    // bits 2k, 2k+1 of qh to bits 4, 5
    const __m256i mask = _mm256_set1_epi8(0x30);
    __m256i high;
    if constexpr (2 * k > 4) {
      high = _mm256_and_si256(_mm256_srli_epi16(qh, 2 * k - 4), mask);
    } else {
      high = _mm256_and_si256(_mm256_slli_epi16(qh, 4 - 2 * k), mask);
    }
    return _mm256_or_si256(low, high);
  }
  static void scales(const Block& b, __m256i* sc, __m256i* /*m*/) {
    *sc = _mm256_cvtepi8_epi16(_mm_loadu_si128(reinterpret_cast<const __m128i*>(b.scales)));
  }
  static uint16_t dmin(const Block& /*b*/) { return 0; }
};

// Calls f(std::integral_constant<int, K>{}) for K = 0..7, so each chunk index is a constant.
// Always inlined, and so must f be (FLASHMEM_KQUANT_INLINE on the lambda): GCC otherwise leaves
// the loop out of line for some callers, where every chunk reaches its operands through the
// captured references and carries its running sums through memory (measured 2.5x slower).
template <typename F>
[[gnu::always_inline]] inline void for_each_chunk(F&& f) {
  [&]<int... K>(std::integer_sequence<int, K...>) FLASHMEM_KQUANT_INLINE {
    (f(std::integral_constant<int, K>{}), ...);
  }(std::make_integer_sequence<int, kQKBlock / 32>{});
}

// Calls f.template operator()<T>() with the traits of `type` (a K-quant).
template <typename F>
inline auto with_traits(DType type, F&& f) {
  switch (type) {
    case DType::Q2_K: return f.template operator()<Q2K>();
    case DType::Q3_K: return f.template operator()<Q3K>();
    case DType::Q4_K: return f.template operator()<Q4K>();
    case DType::Q5_K: return f.template operator()<Q5K>();
    default: return f.template operator()<Q6K>();
  }
}

}  // namespace flashmem::detail::kquant

#endif
