// K-quant dot products on AVX2 (AVX-512 builds run the same integer arithmetic, with madd + add
// fused into dpwssd and matvec's rows two to a 512-bit vector: superblock_sums_pair). Per
// super-block and token: 8 chunks of 32 unsigned codes × int8 activations by maddubs (u8 × s8 ->
// int16 pairs; codes < 64 keep every pair below 2·63·128 < 2^15), weighted by their group scales with madd
// (int16 × int16 -> int32; the scale vector of chunk K is [sc_2K × 8 | sc_2K+1 × 8], one byte
// shuffle of the unpacked scales). The code offset of Q3_K/Q6_K comes back through the activation
// sums (Σ sc·(u - o)·x = Σ sc·u·x - o·Σ_g sc_g·bsum_g, one more madd), and so do the mins
// (msum = Σ_g m_g·bsum_g). The 8 int32 lanes of each result are then summed for 8 rows (matvec)
// or 8 tokens (tiles) at once by a hadd tree, so the f32 step per super-block
//   acc += dx · (d·isum - dmin·msum)
// is one vector operation sequence for 8 outputs, the same sequence in both layouts.
#include "tensor/kquant_kernels.h"

#if defined(FLASHMEM_KQUANT_SIMD)

#include <algorithm>
#include <bit>
#include <cstring>

#include "tensor/kquant_simd.h"

namespace flashmem::detail {
namespace {

using kquant::load256;
using kquant::transpose_sum;

#if defined(__AVX512BW__) && defined(__AVX512VNNI__)
#define FLASHMEM_KQUANT_ZMM 1  // 512-bit maddubs and dpwssd: two rows or two tokens per vector
#endif

// Rows of W processed per pass over the tiles: 16 rows of the widest row we use (2048 columns
// of Q6_K, 1.7 KiB each) stay in L2 while the tiles stream past, and each tile's activations
// (8 × 2048 bytes) are read from L1 by the 16 rows in turn.
constexpr int64_t kTileBlockRows = 16;

// The scales of chunk K as int16 pairs: low 128-bit half sc_2K, high half sc_2K+1 (groups are
// 16 elements, maddubs leaves elements 0-15 of the chunk in the low half). `groups_low` holds
// groups 0-7 in both halves, `groups_high` groups 8-15.
// chunk_scales' byte shuffle for chunk K, per 128-bit lane.
template <int K>
inline __m256i chunk_scale_control() {
  constexpr int j = K % 4;  // chunk within its half of the super-block
  return _mm256_set_m128i(_mm_set1_epi16(static_cast<int16_t>((4 * j + 3) << 8 | (4 * j + 2))),
                          _mm_set1_epi16(static_cast<int16_t>((4 * j + 1) << 8 | (4 * j))));
}
template <int K>
inline __m256i chunk_scales(__m256i groups_low, __m256i groups_high) {
  return _mm256_shuffle_epi8(K < 4 ? groups_low : groups_high, chunk_scale_control<K>());
}

// What the code offset and the mins add to one token's (or row's) chunk sums, from its 16 group
// sums bs: isum -= offset · madd(sc, bs), msum = madd(m, bs) (see the header comment).
template <typename T>
inline void offset_and_mins(__m256i sc, __m256i m, __m256i bs, __m256i* isum, __m256i* msum) {
  if constexpr (T::kOffset != 0) {
    constexpr int shift = std::countr_zero(static_cast<unsigned>(T::kOffset));  // offsets are 4 and 32
    *isum = _mm256_sub_epi32(*isum, _mm256_slli_epi32(_mm256_madd_epi16(sc, bs), shift));
  }
  if constexpr (T::kMins) *msum = _mm256_madd_epi16(m, bs);
}

// For NT tokens (x [8 chunks, NT, 32] codes, bsums [NT, 16]) against one super-block: isum[t]
// with 8 int32 lanes summing to Σ sc·(u - offset)·x, and (when T::kMins) msum[t] summing to
// Σ m_g·bsum_g. With AVX-512 BW + VNNI two tokens share a 512-bit vector (the row's codes and
// scales in both halves, tokens t and t + 1's codes side by side in x): one maddubs and one dpwssd
// per chunk for both, each lane summed as the 256-bit form sums it. Always inlined: GCC otherwise
// calls it for some types and passes every vector through memory.
template <typename T, int NT>
[[gnu::always_inline]] inline void superblock_sums(const typename T::Block& blk, const int8_t* x, const int16_t* bsums, __m256i* isum,
                            __m256i* msum) {
  __m256i sc, m = _mm256_setzero_si256();
  T::scales(blk, &sc, &m);
  const __m256i groups_low = _mm256_permute2x128_si256(sc, sc, 0x00);
  const __m256i groups_high = _mm256_permute2x128_si256(sc, sc, 0x11);
#if defined(FLASHMEM_KQUANT_ZMM)
  constexpr int kPairs = NT / 2;  // tokens 2p, 2p + 1 in pair[p]; an odd last token in isum
  __m512i pair[kPairs > 0 ? kPairs : 1];
  for (int p = 0; p < kPairs; ++p) pair[p] = _mm512_setzero_si512();
#else
  constexpr int kPairs = 0;
#endif
#pragma GCC unroll 8
  for (int t = 2 * kPairs; t < NT; ++t) isum[t] = _mm256_setzero_si256();
  kquant::for_each_chunk([&](auto chunk) FLASHMEM_KQUANT_INLINE {
    constexpr int K = decltype(chunk)::value;
    const __m256i u = T::template chunk<K>(blk);
    const __m256i s = chunk_scales<K>(groups_low, groups_high);
    const int8_t* xk = x + 32 * NT * K;  // [NT, 32] the chunk's codes of every token
#if defined(FLASHMEM_KQUANT_ZMM)
    if constexpr (kPairs > 0) {
      const __m512i u2 = _mm512_broadcast_i64x4(u), s2 = _mm512_broadcast_i64x4(s);
#pragma GCC unroll 4
      for (int p = 0; p < kPairs; ++p) {
        pair[p] = _mm512_dpwssd_epi32(pair[p], _mm512_maddubs_epi16(u2, _mm512_loadu_si512(xk + 64 * p)), s2);
        __asm__("" : "+v"(pair[p]));  // as below
      }
    }
#endif
#pragma GCC unroll 8
    for (int t = 2 * kPairs; t < NT; ++t) {
      const __m256i pairs = _mm256_maddubs_epi16(u, load256(xk + 32 * t));
#if defined(__AVX512VNNI__) && defined(__AVX512VL__)
      isum[t] = _mm256_dpwssd_epi32(isum[t], pairs, s);  // the madd and the add in one (exact, not saturating)
#else
      isum[t] = _mm256_add_epi32(isum[t], _mm256_madd_epi16(pairs, s));
#endif
      // Keeps the running sum in a register: without it GCC reassociates the 8 chunk terms of
      // each token into a tree, computes all NT·8 products first and spills them to the stack
      // (measured 1.5x slower).
      __asm__("" : "+x"(isum[t]));
    }
  });
#if defined(FLASHMEM_KQUANT_ZMM)
  for (int p = 0; p < kPairs; ++p) {
    isum[2 * p] = _mm512_castsi512_si256(pair[p]);
    isum[2 * p + 1] = _mm512_extracti64x4_epi64(pair[p], 1);
  }
#endif
#pragma GCC unroll 8
  for (int t = 0; t < NT; ++t) offset_and_mins<T>(sc, m, load256(bsums + 16 * t), isum + t, msum + t);
}

#if defined(FLASHMEM_KQUANT_ZMM)
#define FLASHMEM_KQUANT_ROW_PAIRS 1
// superblock_sums<T, 1> for two rows' super-blocks a and b against one token, side by side in
// 512-bit vectors (a in the low half, b in the high): one maddubs and one dpwssd serve both rows'
// chunk. Every int32 lane is summed as superblock_sums sums it (exact integer arithmetic), so
// isum[0], isum[1] (and msum) are identical to its results for a and b.
template <typename T>
[[gnu::always_inline]] inline void superblock_sums_pair(const typename T::Block& a, const typename T::Block& b,
                                                        const int8_t* x, const int16_t* bsums, __m256i* isum,
                                                        __m256i* msum) {
  __m256i sc[2], m[2] = {_mm256_setzero_si256(), _mm256_setzero_si256()};
  T::scales(a, &sc[0], &m[0]);
  T::scales(b, &sc[1], &m[1]);
  // 128-bit lanes [a groups 0-7, a groups 0-7, b groups 0-7, b groups 0-7], likewise groups 8-15
  const __m512i groups_low = _mm512_inserti64x4(_mm512_castsi256_si512(_mm256_permute2x128_si256(sc[0], sc[0], 0x00)),
                                                _mm256_permute2x128_si256(sc[1], sc[1], 0x00), 1);
  const __m512i groups_high = _mm512_inserti64x4(_mm512_castsi256_si512(_mm256_permute2x128_si256(sc[0], sc[0], 0x11)),
                                                 _mm256_permute2x128_si256(sc[1], sc[1], 0x11), 1);
  __m512i sum = _mm512_setzero_si512();
  kquant::for_each_chunk([&](auto chunk) FLASHMEM_KQUANT_INLINE {
    constexpr int K = decltype(chunk)::value;
    const __m512i s =
        _mm512_shuffle_epi8(K < 4 ? groups_low : groups_high, _mm512_broadcast_i64x4(chunk_scale_control<K>()));
    const __m512i u = _mm512_inserti64x4(_mm512_castsi256_si512(T::template chunk<K>(a)), T::template chunk<K>(b), 1);
    const __m512i xv = _mm512_broadcast_i64x4(load256(x + 32 * K));
    sum = _mm512_dpwssd_epi32(sum, _mm512_maddubs_epi16(u, xv), s);
    __asm__("" : "+v"(sum));  // as in superblock_sums: the running sum stays in a register
  });
  isum[0] = _mm512_castsi512_si256(sum);
  isum[1] = _mm512_extracti64x4_epi64(sum, 1);
  const __m256i bs = load256(bsums);
  for (int r = 0; r < 2; ++r) offset_and_mins<T>(sc[r], m[r], bs, isum + r, msum + r);
}
#endif

// acc + dx·(d·isum - dmin·msum) per lane: the one f32 sequence every path uses.
template <bool kMins>
inline __m256 accumulate(__m256 acc, __m256 dx, __m256 d, __m256 dmin, __m256i isum, __m256i msum) {
  __m256 term = _mm256_mul_ps(d, _mm256_cvtepi32_ps(isum));
  if constexpr (kMins) term = _mm256_fnmadd_ps(dmin, _mm256_cvtepi32_ps(msum), term);
  return _mm256_fmadd_ps(dx, term, acc);
}

template <typename Block>
inline void prefetch_block(const Block& blk) {
  const auto* p = reinterpret_cast<const char*>(&blk);
  for (size_t line = 0; line < sizeof(Block); line += 64) simd::prefetch_ahead(p + line);
}

// 8 rows (lanes) against one token; rows[i] may repeat a row, only the first n_valid outputs
// are written.
template <typename T>
void matvec_rows8(const typename T::Block* const* rows, const ActivationQ8K& x, float* y, int n_valid) {
  __m256 acc = _mm256_setzero_ps();
  for (int64_t b = 0; b < x.n_blocks; ++b) {
    const int8_t* xq = x.qs.data() + b * kQKBlock;
    const int16_t* bsums = x.bsums.data() + b * 16;
    __m256i isum[8], msum[8];
#if defined(FLASHMEM_KQUANT_ROW_PAIRS)
#pragma GCC unroll 4
    for (int r = 0; r < 8; r += 2) {
      prefetch_block(rows[r][b]);
      prefetch_block(rows[r + 1][b]);
      superblock_sums_pair<T>(rows[r][b], rows[r + 1][b], xq, bsums, isum + r, msum + r);
    }
#else
#pragma GCC unroll 8
    for (int r = 0; r < 8; ++r) {
      const auto& blk = rows[r][b];
      prefetch_block(blk);
      superblock_sums<T, 1>(blk, xq, bsums, isum + r, msum + r);
    }
#endif
    // [row] the f16 scales and mins as f32
    const __m256 dv = _mm256_cvtph_ps(simd::u16_lanes<8>([&](int r) { return rows[r][b].d; }));
    const __m256 dminv = _mm256_cvtph_ps(simd::u16_lanes<8>([&](int r) { return T::dmin(rows[r][b]); }));
    __m256i msums = _mm256_setzero_si256();
    if constexpr (T::kMins) msums = transpose_sum(msum);
    acc = accumulate<T::kMins>(acc, _mm256_set1_ps(x.d[static_cast<size_t>(b)]), dv, dminv, transpose_sum(isum), msums);
  }
  kquant::store_lanes(y, acc, n_valid);
}

// One row against the NT tokens of a tile (lanes = tokens; lanes past NT see zero sums and a
// zero scale). Token t's result goes to y[t * ldy].
template <typename T, int NT>
void tile_row(const typename T::Block* row, const KQuantTile& tile, float* y, int64_t ldy) {
  __m256 acc = _mm256_setzero_ps();
  const int8_t* xq = tile.qs.data();
  const int16_t* bsums = tile.bsums.data();
  const float* dx = tile.d.data();
  for (int64_t b = 0; b < tile.n_blocks; ++b, xq += NT * kQKBlock, bsums += NT * 16, dx += kKTileTokens) {
    __m256i isum[8], msum[8];
    for (int t = NT; t < 8; ++t) isum[t] = msum[t] = _mm256_setzero_si256();
    superblock_sums<T, NT>(row[b], xq, bsums, isum, msum);
    const __m256 d = _mm256_set1_ps(_cvtsh_ss(row[b].d));
    const __m256 dmin = _mm256_set1_ps(_cvtsh_ss(T::dmin(row[b])));
    __m256i msums = _mm256_setzero_si256();
    if constexpr (T::kMins) msums = transpose_sum(msum);
    acc = accumulate<T::kMins>(acc, _mm256_loadu_ps(dx), d, dmin, transpose_sum(isum), msums);
  }
  alignas(32) float out[8];  // [token]
  _mm256_store_ps(out, acc);
  for (int t = 0; t < NT; ++t) y[t * ldy] = out[t];
}

template <typename T>
void tile_row(const typename T::Block* row, const KQuantTile& tile, float* y, int64_t ldy) {
  with_tile_tokens(tile.n_tokens, [&]<int NT>() { tile_row<T, NT>(row, tile, y, ldy); });
}

}  // namespace

void kquant_matvec_rows(DType type, const uint8_t* w, size_t stride, const ActivationQ8K& x, float* y,
                        int64_t begin, int64_t end) {
  kquant::with_traits(type, [&]<typename T>() {
    kquant::for_each_row_group<typename T::Block>(w, stride, begin, end, [&](const auto* rows, int64_t r, int n_valid) {
      matvec_rows8<T>(rows, x, y + r, n_valid);
    });
  });
}

void quantize_kquant_activation(const float* x, int64_t n, ActivationQ8K* out) {
  out->resize(n);
  const int64_t n_blocks = out->n_blocks;
  const __m256 magnitude = _mm256_castsi256_ps(_mm256_set1_epi32(0x7fffffff));  // clears the sign bit
  for (int64_t b = 0; b < n_blocks; ++b) {
    const float* xb = x + b * kQKBlock;
    int8_t* qs = out->qs.data() + b * kQKBlock;
    int16_t* bsums = out->bsums.data() + b * 16;
    // max_ps returns its second operand when the first is NaN, so NaN inputs are skipped as the
    // reference's `>` skips them.
    __m256 amax8 = _mm256_setzero_ps();
    for (int j = 0; j < kQKBlock; j += 8) amax8 = _mm256_max_ps(_mm256_and_ps(_mm256_loadu_ps(xb + j), magnitude), amax8);
    const float amax = simd::hmax256(amax8);
    if (amax == 0.0f) {
      out->d[static_cast<size_t>(b)] = 0.0f;
      std::memset(qs, 0, kQKBlock);
      std::fill(bsums, bsums + 16, int16_t{0});
      continue;
    }
    // The reference keeps the first element of largest magnitude (its sign sets d's).
    int first = 0;
    for (int j = 0; j < kQKBlock; j += 8) {
      const __m256 hit = _mm256_cmp_ps(_mm256_and_ps(_mm256_loadu_ps(xb + j), magnitude), _mm256_set1_ps(amax), _CMP_EQ_OQ);
      const int mask = _mm256_movemask_ps(hit);
      if (mask != 0) {
        first = j + std::countr_zero(static_cast<unsigned>(mask));
        break;
      }
    }
    const float iscale = -127.0f / xb[first];
    const __m256 scale = _mm256_set1_ps(iscale);
    for (int j = 0; j < kQKBlock; j += 32) {
      __m256i q[4];
      for (int k = 0; k < 4; ++k) {
        // round to nearest even = nearbyint in the default rounding mode; |q| <= 127 by choice of d
        const __m256 v = _mm256_round_ps(_mm256_mul_ps(scale, _mm256_loadu_ps(xb + j + 8 * k)),
                                         _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
        q[k] = _mm256_cvtps_epi32(v);
      }
      // The two packs interleave the 128-bit halves: dword i of the result holds codes of vector
      // i % 4, half i / 4; the permute restores element order.
      const __m256i bytes = _mm256_packs_epi16(_mm256_packs_epi32(q[0], q[1]), _mm256_packs_epi32(q[2], q[3]));
      _mm256_storeu_si256(reinterpret_cast<__m256i*>(qs + j),
                          _mm256_permutevar8x32_epi32(bytes, _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7)));
    }
    out->d[static_cast<size_t>(b)] = 1.0f / iscale;
    for (int g = 0; g < 16; ++g) {
      int sum = 0;
      for (int j = 0; j < 16; ++j) sum += qs[16 * g + j];
      bsums[g] = static_cast<int16_t>(sum);
    }
  }
}

void quantize_kquant_tiles(const float* x, int64_t n_tokens, int64_t cols, std::vector<KQuantTile>* tiles,
                           ThreadPool* pool) {
  const int64_t n_tiles = (n_tokens + kKTileTokens - 1) / kKTileTokens;
  const int64_t n_blocks = cols / kQKBlock;
  tiles->resize(static_cast<size_t>(n_tiles));
  const auto work = [&](int64_t begin, int64_t end) {
    ActivationQ8K token;
    for (int64_t i = begin; i < end; ++i) {
      KQuantTile& tile = (*tiles)[static_cast<size_t>(i)];
      const int n = static_cast<int>(std::min<int64_t>(kKTileTokens, n_tokens - i * kKTileTokens));
      tile.n_blocks = n_blocks;
      tile.n_tokens = n;
      tile.qs.resize(static_cast<size_t>(n_blocks * n * kQKBlock));
      tile.bsums.resize(static_cast<size_t>(n_blocks * n * 16));
      tile.d.assign(static_cast<size_t>(n_blocks * kKTileTokens), 0.0f);
      for (int t = 0; t < n; ++t) {
        quantize_kquant_activation(x + (i * kKTileTokens + t) * cols, cols, &token);
        for (int64_t b = 0; b < n_blocks; ++b) {
          for (int k = 0; k < kQKBlock / 32; ++k)  // chunk k of token t at [b, k, t]
            std::memcpy(tile.qs.data() + ((b * kQKBlock / 32 + k) * n + t) * 32,
                        token.qs.data() + b * kQKBlock + 32 * k, 32);
          std::memcpy(tile.bsums.data() + (b * n + t) * 16, token.bsums.data() + b * 16, 16 * sizeof(int16_t));
          tile.d[static_cast<size_t>(b * kKTileTokens + t)] = token.d[static_cast<size_t>(b)];
        }
      }
    }
  };
  parallel_for(n_tiles == 1 ? nullptr : pool, n_tiles, 1, work);
}

void kquant_tile_rows(DType type, const uint8_t* w, size_t stride, const std::vector<KQuantTile>& tiles,
                      float* y, int64_t ldy, int64_t begin, int64_t end) {
  kquant::with_traits(type, [&]<typename T>() {
    using Block = typename T::Block;
    for (int64_t r0 = begin; r0 < end; r0 += kTileBlockRows) {
      const int64_t stop = std::min(end, r0 + kTileBlockRows);
      for (size_t i = 0; i < tiles.size(); ++i) {
        float* yt = y + static_cast<int64_t>(i) * kKTileTokens * ldy;
        for (int64_t r = r0; r < stop; ++r)
          tile_row<T>(reinterpret_cast<const Block*>(w + r * stride), tiles[i], yt + r, ldy);
      }
    }
  });
}

}  // namespace flashmem::detail

#endif
