// matvec: y[rows] = W[rows, cols] · x[cols], threaded over rows of W. Decode runs one of these
// per weight matrix per token, so the kernels stream W once at memory bandwidth: several rows are
// processed together so each activation load from L1 feeds several weight rows.
#include <algorithm>
#include <span>
#include <vector>

#include "tensor/block_quants.h"
#include "tensor/convert.h"
#include "tensor/kernels.h"
#include "tensor/kernels_internal.h"
#include "tensor/kquant_kernels.h"

#include "tensor/simd.h"

namespace flashmem {
namespace {

using detail::ActivationQ8;

// Rows per kernel call: 4 rows × (1-2 accumulators) leaves registers for the shared activation
// vectors, and 4 independent weight streams are enough to keep the prefetchers busy.
constexpr int kRowGroup = 4;

// Below this many weight bytes a matrix is done on one thread: waking the pool (~1 µs) costs
// more than it saves.
constexpr size_t kMinParallelBytes = 32 * 1024;

#if defined(__AVX2__) && defined(__FMA__) && defined(__F16C__)
#define FLASHMEM_MATVEC_SIMD 1

using simd::hsum256;
using simd::prefetch_ahead;

inline __m256i load_q4_nibbles(const BlockQ4_0& b) {
  const __m128i packed = _mm_loadu_si128(reinterpret_cast<const __m128i*>(b.qs));
  const __m256i both = _mm256_set_m128i(_mm_srli_epi16(packed, 4), packed);
  return _mm256_and_si256(both, _mm256_set1_epi8(0x0f));
}

// -2^shift · lane_sums: what an offset of 2^shift added to every weight adds to each lane of a
// block dot product (Σ over the lane's 4 products of 2^shift · q_x), to be cancelled.
template <int Shift>
inline __m256i offset_correction(__m256i lane_sums) {
  return _mm256_sub_epi32(_mm256_setzero_si256(), _mm256_slli_epi32(lane_sums, Shift));
}

// Block dot products: Weights::dot(Weights::prepare(block), x, correction) returns 8 int32 lanes,
// lane l holding the exact Σ q_w·q_x over elements 4l..4l+3 of the block. prepare() is the part
// that depends on the weights only, so a batch of tokens does it once per block; `correction`
// (offset_correction of the activation's lane sums by kOffsetShift, zero when kOffsetShift is 0)
// depends on the activation only, so a batch computes it once per token and block.
#if defined(__AVX512VNNI__) && defined(__AVX512VL__)
// dpbusd multiplies unsigned by signed bytes. The weights are made unsigned by an offset
// (q + 128 for Q8_0, the raw nibble q + 8 for Q4_0); starting each lane at the correction
// -offset·Σx cancels what the offset adds. No product or 4-product lane sum overflows int32
// (|Σ| <= 4·255·128), and dpbusd does not saturate, so the lane sums are exact.
struct Q8Weights {
  using Block = BlockQ8_0;
  static constexpr int kOffsetShift = 7;  // offset 128 = 2^7 maps q ∈ [-128, 127] to [0, 255]
  struct Prepared {
    __m256i u;  // q + 128 as unsigned bytes
  };
  static Prepared prepare(const Block& b) {
    const __m256i q = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(b.qs));
    return {_mm256_xor_si256(q, _mm256_set1_epi8(static_cast<char>(0x80)))};
  }
  static __m256i dot(const Prepared& p, __m256i x, __m256i correction) {
    return _mm256_dpbusd_epi32(correction, p.u, x);
  }
};
struct Q4Weights {
  using Block = BlockQ4_0;
  static constexpr int kOffsetShift = 3;  // the raw nibble is q + 8, 8 = 2^3
  struct Prepared {
    __m256i u;  // the raw nibbles q + 8
  };
  static Prepared prepare(const Block& b) { return {load_q4_nibbles(b)}; }
  static __m256i dot(const Prepared& p, __m256i x, __m256i correction) {
    return _mm256_dpbusd_epi32(correction, p.u, x);
  }
};
#else
// maddubs (u8 × s8 -> pairwise int16, saturating): Q8_0 uses |w| and x with w's sign, whose pair
// sums stay below 2·128·127 < 2^15; Q4_0 nibbles are already unsigned (pairs ≤ 2·15·127).
struct Q8Weights {
  using Block = BlockQ8_0;
  static constexpr int kOffsetShift = 0;  // no offset: the sign trick keeps the weights signed
  struct Prepared {
    __m256i q;    // the signed weights
    __m256i abs;  // |q|
  };
  static Prepared prepare(const Block& b) {
    const __m256i q = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(b.qs));
    return {q, _mm256_sign_epi8(q, q)};
  }
  static __m256i dot(const Prepared& p, __m256i x, __m256i /*correction: zero*/) {
    const __m256i pairs = _mm256_maddubs_epi16(p.abs, _mm256_sign_epi8(x, p.q));
    return _mm256_madd_epi16(pairs, _mm256_set1_epi16(1));
  }
};
struct Q4Weights {
  using Block = BlockQ4_0;
  static constexpr int kOffsetShift = 3;  // the raw nibble is q + 8, 8 = 2^3
  struct Prepared {
    __m256i u;  // the raw nibbles q + 8
  };
  static Prepared prepare(const Block& b) { return {load_q4_nibbles(b)}; }
  static __m256i dot(const Prepared& p, __m256i x, __m256i correction) {
    const __m256i pairs = _mm256_maddubs_epi16(p.u, x);
    return _mm256_add_epi32(_mm256_madd_epi16(pairs, _mm256_set1_epi16(1)), correction);
  }
};
#endif

// The correction Weights::dot needs for a block whose 8 activation lane sums are at lane_sums.
template <typename Weights>
inline __m256i block_correction(const int32_t* lane_sums) {
  if constexpr (Weights::kOffsetShift == 0) {
    return _mm256_setzero_si256();
  } else {
    const __m256i sums = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(lane_sums));
    return offset_correction<Weights::kOffsetShift>(sums);
  }
}

#if defined(__AVX512VNNI__) && defined(__AVX512VL__) && defined(__AVX512DQ__)
#define FLASHMEM_MATVEC_ROW_PAIRS 1
// dot_rows_quantized with two rows per 512-bit vector: lanes 0-7 hold row 2p's 8 lane sums of
// block b, lanes 8-15 row 2p + 1's, so one dpbusd, one conversion and one FMA serve both rows.
// Every lane's arithmetic is the 256-bit loop's (the same exact int32 lane sum, the same scale
// d_w·d_x rounded to f32, one FMA per block in block order, the same final reduction of 8 lanes),
// so each row's result is bit-identical to it, and to dot_row_tile's (matvec_batch). The NR
// rows' scales come from one conversion and one multiply per block (simd::u16_lanes). Weights
// cache-resident, one thread (bench_kernels, Zen 5 VM, alternated with the 256-bit loop): q8_0
// 42.4-46.0 against 35.3-39.4 GB/s; streamed from DRAM the rate is unchanged within the host's
// noise (docs/BENCHMARKS.md, fourteenth session).
// Lanes 0-7 = lane i of v, lanes 8-15 = lane i + 1: the scales of a pair of rows (or tokens).
inline __m512 spread_lane_pair(__m256 v, int i) {
  const __m512i lanes = _mm512_add_epi32(_mm512_set1_epi32(i),
                                         _mm512_setr_epi32(0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 1, 1, 1, 1));
  return _mm512_permutexvar_ps(lanes, _mm512_castps256_ps512(v));
}

// acc's two halves as the 256-bit accumulators lo and hi of a pair.
inline void split_pair(__m512 acc, __m256* lo, __m256* hi) {
  *lo = _mm512_castps512_ps256(acc);
  *hi = _mm512_extractf32x8_ps(acc, 1);
}

template <typename Weights, int NR>
void dot_row_pairs_quantized(const uint8_t* w, size_t stride, const ActivationQ8& xq, float* y) {
  static_assert(NR % 2 == 0 && NR <= 8);  // the scales of all NR rows fill one 8-lane vector
  using Block = typename Weights::Block;
  const Block* rows[NR];
  __m512 acc[NR / 2];  // [pair] lanes 0-7 row 2p, 8-15 row 2p + 1
  for (int r = 0; r < NR; ++r) rows[r] = reinterpret_cast<const Block*>(w + r * stride);
  for (__m512& a : acc) a = _mm512_setzero_ps();
  for (int64_t b = 0; b < xq.n_blocks; ++b) {
    const __m512i x =  // the block's 32 activation codes in both halves
        _mm512_broadcast_i64x4(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(xq.qs.data() + b * kQ8Block)));
    const __m512i correction = _mm512_broadcast_i64x4(block_correction<Weights>(xq.lane_sums.data() + b * 8));
    // [NR] the rows' scales d_w · d_x (the f16 d_w widened exactly, one rounded product each)
    const __m128i dw = simd::u16_lanes<NR>([&](int r) { return rows[r][b].d; });
    const __m256 scales = _mm256_mul_ps(_mm256_cvtph_ps(dw), _mm256_set1_ps(xq.d[b]));
#pragma GCC unroll 4
    for (int p = 0; p < NR / 2; ++p) {
      const Block& b0 = rows[2 * p][b];
      const Block& b1 = rows[2 * p + 1][b];
      prefetch_ahead(&b0);
      prefetch_ahead(&b1);
      const __m512i u = _mm512_inserti64x4(_mm512_castsi256_si512(Weights::prepare(b0).u), Weights::prepare(b1).u, 1);
      const __m512i dot = _mm512_dpbusd_epi32(correction, u, x);
      acc[p] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(dot), spread_lane_pair(scales, 2 * p), acc[p]);
    }
  }
  for (int p = 0; p < NR / 2; ++p) {
    __m256 lo, hi;
    split_pair(acc[p], &lo, &hi);
    y[2 * p] = hsum256(lo);
    y[2 * p + 1] = hsum256(hi);
  }
}
#endif

// Σ_b d_w·d_x·Σ q_w·q_x for NR consecutive rows, one 32-element block per step.
template <typename Weights, int NR>
void dot_rows_quantized(const uint8_t* w, size_t stride, const ActivationQ8& xq, float* y) {
#if defined(FLASHMEM_MATVEC_ROW_PAIRS)
  if constexpr (NR % 2 == 0) return dot_row_pairs_quantized<Weights, NR>(w, stride, xq, y);
#endif
  using Block = typename Weights::Block;
  const Block* rows[NR];
  __m256 acc[NR];
  for (int r = 0; r < NR; ++r) {
    rows[r] = reinterpret_cast<const Block*>(w + r * stride);
    acc[r] = _mm256_setzero_ps();
  }
  for (int64_t b = 0; b < xq.n_blocks; ++b) {
    const __m256i x = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(xq.qs.data() + b * kQ8Block));
    const __m256i correction = block_correction<Weights>(xq.lane_sums.data() + b * 8);
    const float dx = xq.d[b];
#pragma GCC unroll 4
    for (int r = 0; r < NR; ++r) {
      prefetch_ahead(&rows[r][b]);
      const __m256i dot = Weights::dot(Weights::prepare(rows[r][b]), x, correction);
      const __m256 scale = _mm256_set1_ps(_cvtsh_ss(rows[r][b].d) * dx);
      acc[r] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(dot), scale, acc[r]);
    }
  }
  for (int r = 0; r < NR; ++r) y[r] = hsum256(acc[r]);
}

// Up to this many tokens share one pass over a weight row: NT accumulators plus the prepared
// block, an activation vector and temporaries fill the 16 ymm registers of AVX2 without spills.
// Bit-identity with matvec fixes the per-token work: 8 exact int32 lanes of 4 products each,
// one conversion, one FMA. On AVX2 the lanes cost 3 instructions whatever the formulation
// (sign + maddubs + madd; or two madds of pre-widened int16 and an add; no unsigned offset fits
// maddubs' int16 pairs: 2·255·128 > 2^15), and measured alike on Zen 3, as did 16-token tiles
// and 2-row × 4-token register tiles (2026-12-02, one thread, hot weights, shared machine).
constexpr int kMaxTileTokens = 8;

// The activations of a tile of up to kMaxTileTokens tokens, interleaved by block so that one
// pointer (advancing by a block per step) reaches every token's vectors at fixed offsets. The
// per-token part of each block dot product that does not depend on the weights (the offset
// correction) is computed here, once, instead of once per weight row.
struct ActivationTile {
  std::vector<int8_t> qs;            // [n_blocks, NT, 32]
  std::vector<int32_t> corrections;  // [n_blocks, NT, 8] block_correction per token and block;
                                     // empty when the weights need none (kOffsetShift == 0)
  std::vector<float> d;              // [n_blocks, kMaxTileTokens] block scales; unused tokens 0
  int64_t n_blocks = 0;
  int n_tokens = 0;                  // NT
};

template <typename Weights>
void pack_tile(const ActivationQ8* const* xq, int n_tokens, ActivationTile* tile) {
  constexpr bool kCorrected = Weights::kOffsetShift != 0;
  const int64_t n_blocks = xq[0]->n_blocks;
  tile->n_blocks = n_blocks;
  tile->n_tokens = n_tokens;
  tile->qs.resize(static_cast<size_t>(n_blocks * n_tokens * kQ8Block));
  tile->corrections.resize(kCorrected ? static_cast<size_t>(n_blocks * n_tokens * 8) : 0);
  tile->d.assign(static_cast<size_t>(n_blocks * kMaxTileTokens), 0.0f);
  for (int64_t b = 0; b < n_blocks; ++b) {
    for (int t = 0; t < n_tokens; ++t) {
      const ActivationQ8& a = *xq[t];
      std::copy_n(a.qs.data() + b * kQ8Block, kQ8Block, tile->qs.data() + (b * n_tokens + t) * kQ8Block);
      if constexpr (kCorrected)
        _mm256_storeu_si256(reinterpret_cast<__m256i*>(tile->corrections.data() + (b * n_tokens + t) * 8),
                            block_correction<Weights>(a.lane_sums.data() + b * 8));
      tile->d[static_cast<size_t>(b * kMaxTileTokens + t)] = a.d[static_cast<size_t>(b)];
    }
  }
}

// One weight row against the NT tokens of `tile` (token t's result to y[t * y_stride]). Each
// token's arithmetic is dot_rows_quantized's exactly (the same exact integer lane sums, the same
// rounded scale d_w·d_x, the same FMA per block in block order, the same final reduction), so
// every result is bit-identical to matvec; the weight load, its unpacking, its scale conversion
// and the scale products (one vector multiply for all tokens) are shared, and the activation's
// correction comes precomputed from the tile. Per token and block what remains is the exact
// integer dot (AVX2: sign, maddubs, madd; VNNI: one dpbusd), its conversion and one FMA.
template <typename Weights, int NT>
void dot_row_tile(const uint8_t* w, const ActivationTile& tile, float* y, int64_t y_stride) {
  using Block = typename Weights::Block;
  constexpr bool kCorrected = Weights::kOffsetShift != 0;
  const Block* row = reinterpret_cast<const Block*>(w);
  __m256 acc[NT];  // [token]
  for (int t = 0; t < NT; ++t) acc[t] = _mm256_setzero_ps();
  const int8_t* x = tile.qs.data();
  const int32_t* corrections = tile.corrections.data();
  const float* dx = tile.d.data();
#if defined(FLASHMEM_MATVEC_ROW_PAIRS)
  // Tokens 2p and 2p + 1 share a 512-bit vector (their codes and corrections lie side by side in
  // the tile): one dpbusd, conversion and FMA for both, each lane's arithmetic as below; an odd
  // last token takes the 256-bit form.
  constexpr int kPairs = NT / 2;
  __m512 acc2[kPairs > 0 ? kPairs : 1];  // [pair] lanes 0-7 token 2p, 8-15 token 2p + 1
  for (__m512& a : acc2) a = _mm512_setzero_ps();
#else
  constexpr int kPairs = 0;
#endif
  for (int64_t b = 0; b < tile.n_blocks; ++b, x += NT * kQ8Block, dx += kMaxTileTokens) {
    prefetch_ahead(&row[b]);
    const typename Weights::Prepared prepared = Weights::prepare(row[b]);
    // [token] d_w·d_x
    const __m256 scales = _mm256_mul_ps(_mm256_set1_ps(_cvtsh_ss(row[b].d)), _mm256_loadu_ps(dx));
    alignas(32) float scale[kMaxTileTokens];  // the same, for the tokens not in pairs
    if constexpr (2 * kPairs < NT) _mm256_store_ps(scale, scales);
#if defined(FLASHMEM_MATVEC_ROW_PAIRS)
    if constexpr (kPairs > 0) {
      const __m512i u2 = _mm512_broadcast_i64x4(prepared.u);
#pragma GCC unroll 4
      for (int p = 0; p < kPairs; ++p) {
        const __m512i xv = _mm512_loadu_si512(x + 2 * p * kQ8Block);
        const __m512i cv = kCorrected ? _mm512_loadu_si512(corrections + 2 * p * 8) : _mm512_setzero_si512();
        const __m512i dot = _mm512_dpbusd_epi32(cv, u2, xv);
        acc2[p] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(dot), spread_lane_pair(scales, 2 * p), acc2[p]);
      }
    }
#endif
#pragma GCC unroll 8
    for (int t = 2 * kPairs; t < NT; ++t) {
      const __m256i xv = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(x + t * kQ8Block));
      const __m256i cv = kCorrected ? _mm256_loadu_si256(reinterpret_cast<const __m256i*>(corrections + t * 8))
                                    : _mm256_setzero_si256();
      const __m256i dot = Weights::dot(prepared, xv, cv);
      acc[t] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(dot), _mm256_broadcast_ss(scale + t), acc[t]);
    }
    if constexpr (kCorrected) corrections += NT * 8;
  }
#if defined(FLASHMEM_MATVEC_ROW_PAIRS)
  for (int p = 0; p < kPairs; ++p) split_pair(acc2[p], &acc[2 * p], &acc[2 * p + 1]);
#endif
  for (int t = 0; t < NT; ++t) y[t * y_stride] = hsum256(acc[t]);
}

template <typename Weights>
void dot_row_tile(const uint8_t* w, const ActivationTile& tile, float* y, int64_t y_stride) {
  detail::with_tile_tokens(tile.n_tokens, [&]<int NT>() { dot_row_tile<Weights, NT>(w, tile, y, y_stride); });
}

// Rows [begin, end) of W against every tile: row by row, so each row is streamed from memory
// once and re-read from L1 for the other tiles.
template <typename Weights>
void quantized_rows_tiles(const uint8_t* w, size_t stride, const std::vector<ActivationTile>& tiles,
                          float* y, int64_t rows, int64_t begin, int64_t end) {
  for (int64_t r = begin; r < end; ++r)
    for (size_t i = 0; i < tiles.size(); ++i)
      dot_row_tile<Weights>(w + r * stride, tiles[i], y + static_cast<int64_t>(i) * kMaxTileTokens * rows + r, rows);
}

#endif

#if defined(FLASHMEM_MATVEC_SIMD) && defined(__AVX512F__) && defined(__AVX512BW__)

// Float weight loaders: 16 elements (or a masked tail) as f32.
struct F32Weights {
  using Elem = float;
  static __m512 load(const float* p) { return _mm512_loadu_ps(p); }
  static __m512 load(const float* p, __mmask16 m) { return _mm512_maskz_loadu_ps(m, p); }
};
struct F16Weights {
  using Elem = uint16_t;
  static __m512 load(const uint16_t* p) {
    return _mm512_cvtph_ps(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(p)));
  }
  static __m512 load(const uint16_t* p, __mmask16 m) { return _mm512_cvtph_ps(_mm256_maskz_loadu_epi16(m, p)); }
};
struct BF16Weights {
  using Elem = uint16_t;
  static __m512 widen(__m256i h) {
    return _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_cvtepu16_epi32(h), 16));
  }
  static __m512 load(const uint16_t* p) {
    return widen(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(p)));
  }
  static __m512 load(const uint16_t* p, __mmask16 m) { return widen(_mm256_maskz_loadu_epi16(m, p)); }
};

// f32 dot of NR rows with x; two accumulators per row hide the FMA latency.
template <typename Weights, int NR>
void dot_rows_float(const uint8_t* w, size_t stride, const float* x, int64_t cols, float* y) {
  using Elem = typename Weights::Elem;
  const Elem* rows[NR];
  __m512 acc0[NR], acc1[NR];
  for (int r = 0; r < NR; ++r) {
    rows[r] = reinterpret_cast<const Elem*>(w + r * stride);
    acc0[r] = _mm512_setzero_ps();
    acc1[r] = _mm512_setzero_ps();
  }
  int64_t i = 0;
  for (; i + 32 <= cols; i += 32) {
    const __m512 x0 = _mm512_loadu_ps(x + i), x1 = _mm512_loadu_ps(x + i + 16);
#pragma GCC unroll 4
    for (int r = 0; r < NR; ++r) {
      for (size_t line = 0; line < 32 * sizeof(Elem); line += 64)
        prefetch_ahead(reinterpret_cast<const char*>(rows[r] + i) + line);
      acc0[r] = _mm512_fmadd_ps(Weights::load(rows[r] + i), x0, acc0[r]);
      acc1[r] = _mm512_fmadd_ps(Weights::load(rows[r] + i + 16), x1, acc1[r]);
    }
  }
  for (; i < cols; i += 16) {
    const __mmask16 m = cols - i >= 16 ? static_cast<__mmask16>(0xffff)
                                        : static_cast<__mmask16>((1u << (cols - i)) - 1u);
    const __m512 xv = _mm512_maskz_loadu_ps(m, x + i);
    for (int r = 0; r < NR; ++r) acc0[r] = _mm512_fmadd_ps(Weights::load(rows[r] + i, m), xv, acc0[r]);
  }
  for (int r = 0; r < NR; ++r) y[r] = _mm512_reduce_add_ps(_mm512_add_ps(acc0[r], acc1[r]));
}

#elif defined(FLASHMEM_MATVEC_SIMD)

// Float weight loaders: 8 elements as f32, or one element for the scalar tail.
struct F32Weights {
  using Elem = float;
  static __m256 load(const float* p) { return _mm256_loadu_ps(p); }
  static float scalar(const float* p) { return *p; }
};
struct F16Weights {
  using Elem = uint16_t;
  static __m256 load(const uint16_t* p) {
    return _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p)));
  }
  static float scalar(const uint16_t* p) { return fp16_to_f32(*p); }
};
struct BF16Weights {
  using Elem = uint16_t;
  static __m256 load(const uint16_t* p) {
    const __m256i wide = _mm256_cvtepu16_epi32(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p)));
    return _mm256_castsi256_ps(_mm256_slli_epi32(wide, 16));
  }
  static float scalar(const uint16_t* p) { return bf16_to_f32(*p); }
};

// f32 dot of NR rows with x; two accumulators per row hide the FMA latency.
template <typename Weights, int NR>
void dot_rows_float(const uint8_t* w, size_t stride, const float* x, int64_t cols, float* y) {
  using Elem = typename Weights::Elem;
  const Elem* rows[NR];
  __m256 acc0[NR], acc1[NR];
  for (int r = 0; r < NR; ++r) {
    rows[r] = reinterpret_cast<const Elem*>(w + r * stride);
    acc0[r] = _mm256_setzero_ps();
    acc1[r] = _mm256_setzero_ps();
  }
  int64_t i = 0;
  for (; i + 16 <= cols; i += 16) {
    const __m256 x0 = _mm256_loadu_ps(x + i), x1 = _mm256_loadu_ps(x + i + 8);
#pragma GCC unroll 4
    for (int r = 0; r < NR; ++r) {
      prefetch_ahead(rows[r] + i);
      acc0[r] = _mm256_fmadd_ps(Weights::load(rows[r] + i), x0, acc0[r]);
      acc1[r] = _mm256_fmadd_ps(Weights::load(rows[r] + i + 8), x1, acc1[r]);
    }
  }
  for (int r = 0; r < NR; ++r) {
    float sum = hsum256(_mm256_add_ps(acc0[r], acc1[r]));
    for (int64_t k = i; k < cols; ++k) sum += Weights::scalar(rows[r] + k) * x[k];
    y[r] = sum;
  }
}

#endif

#if defined(FLASHMEM_MATVEC_SIMD)

template <int NR>
void dot_rows(DType type, const uint8_t* w, size_t stride, const float* x, const ActivationQ8& xq,
              int64_t cols, float* y) {
  switch (type) {
    case DType::Q8_0: return dot_rows_quantized<Q8Weights, NR>(w, stride, xq, y);
    case DType::Q4_0: return dot_rows_quantized<Q4Weights, NR>(w, stride, xq, y);
    case DType::F16: return dot_rows_float<F16Weights, NR>(w, stride, x, cols, y);
    case DType::BF16: return dot_rows_float<BF16Weights, NR>(w, stride, x, cols, y);
    default: return dot_rows_float<F32Weights, NR>(w, stride, x, cols, y);
  }
}

#else  // portable fallback: the reference arithmetic, per row.

template <int NR>
void dot_rows(DType type, const uint8_t* w, size_t stride, const float* x, const ActivationQ8& xq,
              int64_t cols, float* y) {
  std::vector<float> row(static_cast<size_t>(cols));  // [cols]
  for (int r = 0; r < NR; ++r) {
    const uint8_t* src = w + r * stride;
    if (type == DType::Q8_0 || type == DType::Q4_0) {
      float sum = 0.0f;
      for (int64_t b = 0; b < xq.n_blocks; ++b) {
        int8_t q[kQ8Block];  // the block's weights as signed integers
        uint16_t d_bits;
        if (type == DType::Q8_0) {
          const auto& blk = reinterpret_cast<const BlockQ8_0*>(src)[b];
          for (int j = 0; j < kQ8Block; ++j) q[j] = blk.qs[j];
          d_bits = blk.d;
        } else {
          const auto& blk = reinterpret_cast<const BlockQ4_0*>(src)[b];
          for (int j = 0; j < kQ4Block / 2; ++j) {
            q[j] = static_cast<int8_t>((blk.qs[j] & 0x0f) - 8);
            q[j + kQ4Block / 2] = static_cast<int8_t>((blk.qs[j] >> 4) - 8);
          }
          d_bits = blk.d;
        }
        int32_t isum = 0;
        for (int j = 0; j < kQ8Block; ++j) isum += q[j] * xq.qs[b * kQ8Block + j];
        sum += fp16_to_f32(d_bits) * xq.d[b] * static_cast<float>(isum);
      }
      y[r] = sum;
    } else {
      dequantize_row(type, src, row.data(), cols);
      y[r] = dot_f32(row.data(), x, cols);
    }
  }
}

#endif

void matvec_range(DType type, const uint8_t* w, size_t stride, const float* x, const ActivationQ8& xq,
                  float* y, int64_t cols, int64_t begin, int64_t end) {
  int64_t r = begin;
  for (; r + kRowGroup <= end; r += kRowGroup) dot_rows<kRowGroup>(type, w + r * stride, stride, x, xq, cols, y + r);
  for (; r < end; ++r) dot_rows<1>(type, w + r * stride, stride, x, xq, cols, y + r);
}

// Runs work(begin, end) over the rows, threaded when the matrix is large enough to pay for it.
template <typename Work>
void run_rows(ThreadPool* pool, int64_t rows, size_t stride, const Work& work) {
  parallel_for(stride * static_cast<size_t>(rows) < kMinParallelBytes ? nullptr : pool, rows, kRowGroup, work);
}

}  // namespace

void matvec_many(DType type, std::span<const MatvecTarget> targets, const float* x, int64_t cols,
                 ThreadPool* pool) {
  const size_t stride = row_bytes(type, cols);
  int64_t total = 0;
  for (const MatvecTarget& t : targets) total += t.rows;
  // Runs rows(w, y, begin, end) over the targets' rows as one range [0, total) of concatenated
  // rows, split across the pool's threads in one dispatch.
  auto over_targets = [&](const auto& rows) {
    run_rows(pool, total, stride, [&](int64_t begin, int64_t end) {
      int64_t row0 = 0;  // the first row of target t in the concatenation
      for (const MatvecTarget& t : targets) {
        const int64_t b = std::max(begin, row0) - row0, e = std::min(end, row0 + t.rows) - row0;
        if (b < e) rows(static_cast<const uint8_t*>(t.w), t.y, b, e);
        row0 += t.rows;
      }
    });
  };
  if (detail::is_block_quant(type)) {
    thread_local detail::QuantizedActivation block_activation_storage;
    const detail::QuantizedActivation& xa = block_activation_storage;
#if defined(FLASHMEM_KQUANT_SIMD)
    if (detail::activation_format(type) == detail::ActivationFormat::kQ8_K) {
      detail::quantize_kquant_activation(x, cols, &block_activation_storage.q8k);
      over_targets([&](const uint8_t* w, float* y, int64_t begin, int64_t end) {
        detail::kquant_matvec_rows(type, w, stride, xa.q8k, y, begin, end);
      });
      return;
    }
#endif
    detail::quantize_activation(type, x, cols, &block_activation_storage);
    over_targets([&](const uint8_t* w, float* y, int64_t begin, int64_t end) {
      detail::dot_block_quant_rows(type, w, stride, xa, cols, y, begin, end);
    });
    return;
  }
  // Reused across calls to avoid an allocation per matvec; bound to a plain reference because a
  // thread_local named inside the lambda would resolve to the worker thread's own (empty) copy.
  thread_local ActivationQ8 activation_storage;
  const ActivationQ8& xq = activation_storage;
  if (type == DType::Q8_0 || type == DType::Q4_0) detail::quantize_activation_q8(x, cols, &activation_storage);
  over_targets([&](const uint8_t* w, float* y, int64_t begin, int64_t end) {
    matvec_range(type, w, stride, x, xq, y, cols, begin, end);
  });
}

void matvec(DType type, const void* w, const float* x, float* y, int64_t rows, int64_t cols,
            ThreadPool* pool) {
  const MatvecTarget target{w, y, rows};
  matvec_many(type, std::span(&target, 1), x, cols, pool);
}

void matvec_batch(DType type, const void* w, const float* x, float* y, int64_t n_tokens,
                  int64_t rows, int64_t cols, ThreadPool* pool) {
  if (n_tokens == 1) return matvec(type, w, x, y, rows, cols, pool);
  const auto* base = static_cast<const uint8_t*>(w);
  const size_t stride = row_bytes(type, cols);
#if defined(FLASHMEM_KQUANT_SIMD)
  if (detail::activation_format(type) == detail::ActivationFormat::kQ8_K) {
    // Tiles of 8 tokens: each weight super-block unpacked once per tile (kquant_kernels.h).
    thread_local std::vector<detail::KQuantTile> tile_storage;  // [ceil(n_tokens / 8)] (see matvec)
    detail::quantize_kquant_tiles(x, n_tokens, cols, &tile_storage, pool);
    const std::vector<detail::KQuantTile>& tiles = tile_storage;
    run_rows(pool, rows, stride, [&](int64_t begin, int64_t end) {
      detail::kquant_tile_rows(type, base, stride, tiles, y, rows, begin, end);
    });
    return;
  }
#endif
  // Weight rows per block: the block is streamed from memory for the first token and re-read
  // from cache for the others. 16 rows of a 2048-column Q8_0 matrix are 35 KiB, within L2 on
  // any x86 core (and 128 KiB at f32), while a thread's row range still spans many blocks.
  constexpr int64_t kBlockRows = 4 * kRowGroup;
  const bool block_quant = detail::is_block_quant(type);
  thread_local std::vector<ActivationQ8> activation_storage;  // [n_tokens] (see matvec)
  thread_local std::vector<detail::QuantizedActivation> block_activation_storage;  // [n_tokens]
  if (block_quant) {
    if (block_activation_storage.size() < static_cast<size_t>(n_tokens))
      block_activation_storage.resize(static_cast<size_t>(n_tokens));
    for (int64_t t = 0; t < n_tokens; ++t)
      detail::quantize_activation(type, x + t * cols, cols, &block_activation_storage[static_cast<size_t>(t)]);
  } else {
    if (activation_storage.size() < static_cast<size_t>(n_tokens))
      activation_storage.resize(static_cast<size_t>(n_tokens));
    if (type == DType::Q8_0 || type == DType::Q4_0)
      for (int64_t t = 0; t < n_tokens; ++t)
        detail::quantize_activation_q8(x + t * cols, cols, &activation_storage[static_cast<size_t>(t)]);
  }
  const std::vector<ActivationQ8>& xq = activation_storage;
  const std::vector<detail::QuantizedActivation>& xa = block_activation_storage;
#if defined(FLASHMEM_MATVEC_SIMD)
  if (type == DType::Q8_0 || type == DType::Q4_0) {
    thread_local std::vector<ActivationTile> tile_storage;  // [ceil(n_tokens / 8)] (see matvec)
    std::vector<ActivationTile>& tiles = tile_storage;
    tiles.resize(static_cast<size_t>((n_tokens + kMaxTileTokens - 1) / kMaxTileTokens));
    std::vector<const ActivationQ8*> tokens(static_cast<size_t>(n_tokens));  // [n_tokens]
    for (int64_t t = 0; t < n_tokens; ++t) tokens[static_cast<size_t>(t)] = &xq[static_cast<size_t>(t)];
    for (size_t i = 0; i < tiles.size(); ++i) {
      const int64_t t0 = static_cast<int64_t>(i) * kMaxTileTokens;
      const int tile_tokens = static_cast<int>(std::min<int64_t>(kMaxTileTokens, n_tokens - t0));
      if (type == DType::Q8_0)
        pack_tile<Q8Weights>(tokens.data() + t0, tile_tokens, &tiles[i]);
      else
        pack_tile<Q4Weights>(tokens.data() + t0, tile_tokens, &tiles[i]);
    }
    run_rows(pool, rows, stride, [&](int64_t begin, int64_t end) {
      if (type == DType::Q8_0)
        quantized_rows_tiles<Q8Weights>(base, stride, tiles, y, rows, begin, end);
      else
        quantized_rows_tiles<Q4Weights>(base, stride, tiles, y, rows, begin, end);
    });
    return;
  }
#endif
  // Each row's arithmetic is matvec's: matvec_range and dot_block_quant_rows compute every row alone,
  // whatever range or group it falls in.
  run_rows(pool, rows, stride, [&](int64_t begin, int64_t end) {
    for (int64_t r = begin; r < end; r += kBlockRows) {
      const int64_t stop = std::min(end, r + kBlockRows);
      for (int64_t t = 0; t < n_tokens; ++t) {
        if (block_quant) {
          detail::dot_block_quant_rows(type, base, stride, xa[static_cast<size_t>(t)], cols, y + t * rows, r, stop);
        } else {
          matvec_range(type, base, stride, x + t * cols, xq[static_cast<size_t>(t)], y + t * rows, cols, r, stop);
        }
      }
    }
  });
}

}  // namespace flashmem
