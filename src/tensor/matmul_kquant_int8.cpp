// Integer GEMM for K-quant weights (Q2_K .. Q6_K, AVX-512 VNNI): prefill's Y[n_tokens, rows] =
// X · W^T with 64 multiply-adds per dpbusd, bit-identical to matvec on every (row, token).
//
// matvec (kquant_kernels.cpp) computes per super-block and token two exact integers, isum = Σ_g
// sc_g · Σ_{i in g} (u_i - offset) · x_i and msum = Σ_g m_g · bsum_g, and then the same f32 steps
// term = d·isum, term -= dmin·msum (fused), acc += dx·term. Integer sums do not depend on their
// order, so a kernel that forms the same two integers in another order and then takes the same
// f32 steps in super-block order gives the same bits; the tile kernel it replaced for prefill
// (matvec_batch) held the same contract, and `Matmul.KQuantsAreMatvecBitForBit` checks it.
//
// The weights of a panel of 32 rows are repacked once into dpbusd order (as matmul_int8.cpp does
// for Q8_0): for each group of 4 columns the 4 unsigned codes (< 64) of every row side by side,
// so one 64-byte load feeds 16 rows and one broadcast of 4 activation bytes; codes are unsigned
// and activations signed, which is the operand order dpbusd wants, so no bias is needed. Per
// group of 16 columns the code sums are multiplied by the group's scale (vpmulld) and added; the
// code offset (Q3_K, Q6_K) and the mins come through the activations' 16-column sums bsum_g, two
// groups per dpwssd (the scales or mins as int16 pairs). Every integer is exact in int32: a
// group's code sum is below 16·63·128 < 2^17, times |sc_g| <= 128 below 2^24, 16 groups below 2^28.
#include <algorithm>
#include <cstring>
#include <vector>

#include "tensor/kernels_internal.h"
#include "tensor/kquant_kernels.h"
#include "tensor/kquant_simd.h"

namespace flashmem::detail {

#if defined(FLASHMEM_INT8_GEMM_VNNI) && defined(FLASHMEM_KQUANT_SIMD)

namespace {

// 2 vectors of 16 rows. With 4 tokens per tile the kernel holds 8 group sums, 8 super-block sums
// and 8 f32 accumulators, plus 2 weight and 2 scale vectors, in the 32 zmm registers (6 tokens
// would need 36 for the sums and accumulators alone).
constexpr int kPanelRows = 32;
constexpr int kTileTokens = 4;
constexpr int kGroups = kQKBlock / 16;     // scale groups per super-block
constexpr int kQuads = kQKBlock / 4;       // dpbusd steps per super-block
constexpr int kQuadsPerGroup = 16 / 4;

// Packing a panel unpacks each weight once and writes ~1.4 bytes per weight (codes, scales), which
// only pays over enough tokens. On 2048 x 768, one thread, against the tile kernel (each
// super-block unpacked once per 8 tokens): 0.7-0.9x at 8 tokens, about even at 12, 1.0-1.4x at
// 16, 1.15-1.5x at 24 (bench_kernels, docs/BENCHMARKS.md, fifteenth session; packing one row at a
// time with 4-byte copies, before the transpose in pack_panel, moved the crossover to 24-32).
constexpr int64_t kMinTokens = 16;

// One packed panel of kPanelRows rows and n_blocks super-blocks; padding rows come from an all-zero
// block (their outputs are never stored).
struct KPanel {
  std::vector<uint8_t> codes;     // [n_blocks, kQuads, kPanelRows, 4] unsigned codes u
  std::vector<int32_t> scales;    // [n_blocks, kGroups, kPanelRows] sc_g
  std::vector<int32_t> sc_pairs;  // [n_blocks, kGroups / 2, kPanelRows] (sc_2k, sc_2k+1) as int16 pairs
  std::vector<int32_t> m_pairs;   // [n_blocks, kGroups / 2, kPanelRows] (m_2k, m_2k+1) as int16 pairs
  std::vector<float> d, dmin;     // [n_blocks, kPanelRows] the super-block scales as f32
};

// Rows [0, n_rows) of W (n_rows <= kPanelRows) into `panel`; the rows after them are packed
// from an all-zero block (zero codes and d: their outputs are never stored). Four rows at a
// time: a chunk of 32 codes is 8 quads, and a 4 x 8 transpose of 32-bit lanes (two rounds of
// unpacks) turns 4 rows' chunks into the 8 runs of 16 bytes (rows r .. r + 3 of one quad) the
// panel holds (against one row at a time with 4-byte copies: see kMinTokens).
template <typename T>
void pack_panel(const uint8_t* w, size_t stride, int64_t n_rows, int64_t n_blocks, KPanel* panel) {
  using Block = typename T::Block;
  static const Block kZeroBlock{};
  panel->codes.resize(static_cast<size_t>(n_blocks * kQuads * kPanelRows * 4));
  panel->scales.resize(static_cast<size_t>(n_blocks * kGroups * kPanelRows));
  panel->sc_pairs.resize(static_cast<size_t>(n_blocks * kGroups / 2 * kPanelRows));
  panel->m_pairs.resize(panel->sc_pairs.size());
  panel->d.resize(static_cast<size_t>(n_blocks * kPanelRows));
  panel->dmin.resize(panel->d.size());
  for (int r0 = 0; r0 < kPanelRows; r0 += 4) {
    for (int64_t b = 0; b < n_blocks; ++b) {
      const Block* blk[4];  // [4] rows r0 .. r0 + 3's super-block b, or the zero block past n_rows
      for (int i = 0; i < 4; ++i)
        blk[i] = r0 + i < n_rows ? reinterpret_cast<const Block*>(w + (r0 + i) * stride) + b : &kZeroBlock;
      uint8_t* codes = panel->codes.data() + (b * kQuads * kPanelRows + r0) * 4;
      kquant::for_each_chunk([&](auto chunk) FLASHMEM_KQUANT_INLINE {
        constexpr int K = decltype(chunk)::value;
        const __m256i c0 = T::template chunk<K>(*blk[0]), c1 = T::template chunk<K>(*blk[1]);
        const __m256i c2 = T::template chunk<K>(*blk[2]), c3 = T::template chunk<K>(*blk[3]);
        // per 128-bit half: t0 = [r0 q0, r1 q0, r0 q1, r1 q1], t1 = the same for q2, q3; t2, t3 rows 2, 3
        const __m256i t0 = _mm256_unpacklo_epi32(c0, c1), t1 = _mm256_unpackhi_epi32(c0, c1);
        const __m256i t2 = _mm256_unpacklo_epi32(c2, c3), t3 = _mm256_unpackhi_epi32(c2, c3);
        // quad q's 4 rows: low half of quads[q % 4] for q < 4, high half for q >= 4
        const __m256i quads[4] = {_mm256_unpacklo_epi64(t0, t2), _mm256_unpackhi_epi64(t0, t2),
                                  _mm256_unpacklo_epi64(t1, t3), _mm256_unpackhi_epi64(t1, t3)};
        for (int q = 0; q < 4; ++q) {
          auto* lo = reinterpret_cast<__m128i*>(codes + (8 * K + q) * kPanelRows * 4);
          auto* hi = reinterpret_cast<__m128i*>(codes + (8 * K + q + 4) * kPanelRows * 4);
          _mm_storeu_si128(lo, _mm256_castsi256_si128(quads[q]));
          _mm_storeu_si128(hi, _mm256_extracti128_si256(quads[q], 1));
        }
      });
      for (int i = 0; i < 4; ++i) {
        const int r = r0 + i;
        __m256i sc, m = _mm256_setzero_si256();
        T::scales(*blk[i], &sc, &m);
        alignas(32) int16_t sc16[kGroups], m16[kGroups];  // [group]
        _mm256_store_si256(reinterpret_cast<__m256i*>(sc16), sc);
        _mm256_store_si256(reinterpret_cast<__m256i*>(m16), m);
        for (int g = 0; g < kGroups; ++g) panel->scales[(b * kGroups + g) * kPanelRows + r] = sc16[g];
        for (int k = 0; k < kGroups / 2; ++k) {
          const size_t at = static_cast<size_t>((b * kGroups / 2 + k) * kPanelRows + r);
          std::memcpy(&panel->sc_pairs[at], sc16 + 2 * k, 4);
          std::memcpy(&panel->m_pairs[at], m16 + 2 * k, 4);
        }
        panel->d[b * kPanelRows + r] = _cvtsh_ss(blk[i]->d);
        panel->dmin[b * kPanelRows + r] = _cvtsh_ss(T::dmin(*blk[i]));
      }
    }
  }
}

// y[t * ldy + r] for MT tokens t0.. of xq ([n_tokens · n_blocks] super-blocks, token-major) and the
// panel's rows r < n_valid.
template <typename T, int MT>
void panel_tile(const ActivationQ8K& xq, int64_t t0, int64_t n_blocks, const KPanel& panel, float* y, int64_t ldy,
                 int64_t n_valid) {
  __m512 acc[MT][2];
  for (int t = 0; t < MT; ++t) acc[t][0] = acc[t][1] = _mm512_setzero_ps();
  for (int64_t b = 0; b < n_blocks; ++b) {
    const int8_t* x[MT];      // [MT] each token's codes of this super-block
    const int16_t* bs[MT];    // [MT] and its 16 group sums
    for (int t = 0; t < MT; ++t) {
      const int64_t blk = (t0 + t) * n_blocks + b;
      x[t] = xq.qs.data() + blk * kQKBlock;
      bs[t] = xq.bsums.data() + blk * kGroups;
    }
    // Σ_g a_g · bsum_g per row for the int16 pairs a (scales or mins), two groups per dpwssd.
    auto pair_sums = [&](const std::vector<int32_t>& pairs, int t, __m512i* out) FLASHMEM_KQUANT_INLINE {
      const int32_t* p = pairs.data() + b * kGroups / 2 * kPanelRows;
      out[0] = out[1] = _mm512_setzero_si512();
#pragma GCC unroll 8
      for (int k = 0; k < kGroups / 2; ++k) {
        int32_t two;
        std::memcpy(&two, bs[t] + 2 * k, 4);
        const __m512i bb = _mm512_set1_epi32(two);
        out[0] = _mm512_dpwssd_epi32(out[0], _mm512_loadu_si512(p + k * kPanelRows), bb);
        out[1] = _mm512_dpwssd_epi32(out[1], _mm512_loadu_si512(p + k * kPanelRows + 16), bb);
      }
    };
    // Σ_g sc_g · Σ_{i in g} (u_i - offset) · x_i: starts at -offset · Σ_g sc_g · bsum_g (Q3_K,
    // Q6_K), then the groups' code sums are added. Every step is exact in int32, so the order
    // does not matter.
    __m512i isum[MT][2];
#pragma GCC unroll 8
    for (int t = 0; t < MT; ++t) {
      if constexpr (T::kOffset != 0) {
        static_assert(T::kOffset == 4 || T::kOffset == 32);
        constexpr int shift = T::kOffset == 4 ? 2 : 5;
        __m512i off[2];
        pair_sums(panel.sc_pairs, t, off);
        for (int i = 0; i < 2; ++i) isum[t][i] = _mm512_sub_epi32(_mm512_setzero_si512(), _mm512_slli_epi32(off[i], shift));
      } else {
        isum[t][0] = isum[t][1] = _mm512_setzero_si512();
      }
    }
    const uint8_t* codes = panel.codes.data() + b * kQuads * kPanelRows * 4;
    const int32_t* scales = panel.scales.data() + b * kGroups * kPanelRows;
    for (int g = 0; g < kGroups; ++g) {
      __m512i gsum[MT][2];  // Σ_{i in g} u_i · x_i per row
      for (int t = 0; t < MT; ++t) gsum[t][0] = gsum[t][1] = _mm512_setzero_si512();
#pragma GCC unroll 4
      for (int j = 0; j < kQuadsPerGroup; ++j) {
        const int q = g * kQuadsPerGroup + j;
        const __m512i w0 = _mm512_loadu_si512(codes + q * kPanelRows * 4);
        const __m512i w1 = _mm512_loadu_si512(codes + q * kPanelRows * 4 + 64);
#pragma GCC unroll 8
        for (int t = 0; t < MT; ++t) {
          int32_t four;
          std::memcpy(&four, x[t] + 4 * q, 4);
          const __m512i xb = _mm512_set1_epi32(four);
          gsum[t][0] = _mm512_dpbusd_epi32(gsum[t][0], w0, xb);
          gsum[t][1] = _mm512_dpbusd_epi32(gsum[t][1], w1, xb);
        }
      }
      const __m512i sc0 = _mm512_loadu_si512(scales + g * kPanelRows);
      const __m512i sc1 = _mm512_loadu_si512(scales + g * kPanelRows + 16);
#pragma GCC unroll 8
      for (int t = 0; t < MT; ++t) {
        isum[t][0] = _mm512_add_epi32(isum[t][0], _mm512_mullo_epi32(gsum[t][0], sc0));
        isum[t][1] = _mm512_add_epi32(isum[t][1], _mm512_mullo_epi32(gsum[t][1], sc1));
      }
    }
    const __m512 d[2] = {_mm512_loadu_ps(panel.d.data() + b * kPanelRows),
                         _mm512_loadu_ps(panel.d.data() + b * kPanelRows + 16)};
    const __m512 dmin[2] = {_mm512_loadu_ps(panel.dmin.data() + b * kPanelRows),
                            _mm512_loadu_ps(panel.dmin.data() + b * kPanelRows + 16)};
#pragma GCC unroll 8
    for (int t = 0; t < MT; ++t) {
      __m512i msum[2] = {_mm512_setzero_si512(), _mm512_setzero_si512()};
      if constexpr (T::kMins) pair_sums(panel.m_pairs, t, msum);
      // matvec's f32 steps (kquant_kernels.cpp, accumulate): term = d·isum, term -= dmin·msum,
      // acc += dx·term
      const __m512 dx = _mm512_set1_ps(xq.d[static_cast<size_t>((t0 + t) * n_blocks + b)]);
      for (int i = 0; i < 2; ++i) {
        __m512 term = _mm512_mul_ps(d[i], _mm512_cvtepi32_ps(isum[t][i]));
        if constexpr (T::kMins) term = _mm512_fnmadd_ps(dmin[i], _mm512_cvtepi32_ps(msum[i]), term);
        acc[t][i] = _mm512_fmadd_ps(dx, term, acc[t][i]);
      }
    }
  }
  const __mmask16 mask0 = static_cast<__mmask16>((1u << std::min<int64_t>(16, n_valid)) - 1u);
  const __mmask16 mask1 = static_cast<__mmask16>((1u << std::clamp<int64_t>(n_valid - 16, 0, 16)) - 1u);
  for (int t = 0; t < MT; ++t) {
    _mm512_mask_storeu_ps(y + t * ldy, mask0, acc[t][0]);
    _mm512_mask_storeu_ps(y + t * ldy + 16, mask1, acc[t][1]);
  }
}

template <typename T>
void panel_tiles(const ActivationQ8K& xq, int64_t n_tokens, int64_t n_blocks, const KPanel& panel, float* y,
                 int64_t ldy, int64_t n_valid) {
  int64_t t = 0;
  for (; t + kTileTokens <= n_tokens; t += kTileTokens)
    panel_tile<T, kTileTokens>(xq, t, n_blocks, panel, y + t * ldy, ldy, n_valid);
  float* yt = y + t * ldy;
  switch (n_tokens - t) {
    case 3: panel_tile<T, 3>(xq, t, n_blocks, panel, yt, ldy, n_valid); break;
    case 2: panel_tile<T, 2>(xq, t, n_blocks, panel, yt, ldy, n_valid); break;
    case 1: panel_tile<T, 1>(xq, t, n_blocks, panel, yt, ldy, n_valid); break;
    default: break;
  }
}

// x [n_tokens, cols] -> out, token t's super-blocks at [t · cols / 256, (t + 1) · cols / 256):
// each token quantized alone, as matvec quantizes it, on the pool's threads (serially it took
// 5-10% of a prefill pass's time with the other thread idle).
void quantize_tokens(const float* x, int64_t n_tokens, int64_t cols, ActivationQ8K* out, ThreadPool* pool) {
  const int64_t n_blocks = cols / kQKBlock;
  out->resize(n_tokens * cols);
  const auto work = [&](int64_t begin, int64_t end) {
    thread_local ActivationQ8K token;
    for (int64_t t = begin; t < end; ++t) {
      quantize_kquant_activation(x + t * cols, cols, &token);
      std::memcpy(out->qs.data() + t * cols, token.qs.data(), static_cast<size_t>(cols));
      std::memcpy(out->d.data() + t * n_blocks, token.d.data(), static_cast<size_t>(n_blocks) * sizeof(float));
      std::memcpy(out->bsums.data() + t * n_blocks * kGroups, token.bsums.data(),
                  static_cast<size_t>(n_blocks * kGroups) * sizeof(int16_t));
    }
  };
  parallel_for(pool, n_tokens, 1, work);
}

}  // namespace

bool matmul_kquant_int8(DType type, const void* w, const float* x, float* y, int64_t n_tokens, int64_t rows,
                        int64_t cols, ThreadPool* pool) {
  const bool kquant = type == DType::Q2_K || type == DType::Q3_K || type == DType::Q4_K || type == DType::Q5_K ||
                      type == DType::Q6_K;
  if (!kquant || n_tokens < kMinTokens || cols % kQKBlock != 0) return false;
  // Every token's Q8_K activation, token-major ([n_tokens · n_blocks] super-blocks), quantized by
  // the pool's threads a token at a time (quantize_kquant_activation: matvec's codes and sums).
  thread_local ActivationQ8K activation_storage;
  quantize_tokens(x, n_tokens, cols, &activation_storage, pool);
  const ActivationQ8K& xq = activation_storage;  // a plain reference for the workers (see matvec)
  const auto* base = static_cast<const uint8_t*>(w);
  const size_t stride = row_bytes(type, cols);
  const int64_t n_blocks = cols / kQKBlock;
  kquant::with_traits(type, [&]<typename T>() {
    const auto work = [&](int64_t begin, int64_t end) {
      thread_local KPanel panel;
      for (int64_t r0 = begin; r0 < end; r0 += kPanelRows) {
        const int64_t n_valid = std::min<int64_t>(kPanelRows, end - r0);
        pack_panel<T>(base + r0 * stride, stride, n_valid, n_blocks, &panel);
        panel_tiles<T>(xq, n_tokens, n_blocks, panel, y + r0, rows, n_valid);
      }
    };
    parallel_for(pool, rows, kPanelRows, work);
  });
  return true;
}

#else

bool matmul_kquant_int8(DType, const void*, const float*, float*, int64_t, int64_t, int64_t, ThreadPool*) {
  return false;
}

#endif

}  // namespace flashmem::detail
