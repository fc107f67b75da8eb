// Fast dot products of K-quant weight rows (Q2_K .. Q6_K) with Q8_K activations, for decode
// (matvec: one token, rows of W in the vector lanes) and for batches and prefill (a tile of up to
// 8 tokens in the lanes, each weight super-block unpacked once per tile). Internal to tensor/:
// matvec.cpp and block_quants_simd.cpp call these; builds without AVX2 + FMA + F16C use the
// reference (block_quants_ref.cpp) instead and never reach this file's functions.
//
// Exactness: every super-block's integer sums are the reference's, and every output goes through
// the same f32 operations per super-block, in super-block order, whichever path and lane it is
// computed in: matvec, matvec_batch and matmul agree bit for bit on each (row, token).
#pragma once
#include <cstddef>
#include <cstdint>
#include <vector>

#include "tensor/block_quants.h"
#include "tensor/dtype.h"

#if defined(__AVX2__) && defined(__FMA__) && defined(__F16C__)
#define FLASHMEM_KQUANT_SIMD 1

namespace flashmem::detail {

// y[r] = Σ_b x.d[b]·(d_w·isum - dmin_w·msum) for rows [begin, end) of W (row stride `stride`
// bytes) against one activation (the reference's per-row result, up to fused multiply-adds).
void kquant_matvec_rows(DType type, const uint8_t* w, size_t stride, const ActivationQ8K& x, float* y,
                        int64_t begin, int64_t end);

// x[n] -> out exactly as quantize_activation_q8k (block_quants.h) does, with AVX2 (n a multiple
// of 256; NaN inputs aside, which the reference turns into code 0 and this into -128).
void quantize_kquant_activation(const float* x, int64_t n, ActivationQ8K* out);

// Up to kKTileTokens tokens' Q8_K activations interleaved per super-block, so one pointer reaches
// every token's codes and sums at fixed offsets.
constexpr int kKTileTokens = 8;  // the 8 f32 lanes of a ymm register, one per token
struct KQuantTile {
  std::vector<int8_t> qs;      // [n_blocks, 8 chunks, n_tokens, 32] codes: a chunk's tokens side by side
  std::vector<int16_t> bsums;  // [n_blocks, n_tokens, 16] sums of each 16 codes
  std::vector<float> d;        // [n_blocks, kKTileTokens] scales; tokens past n_tokens 0
  int64_t n_blocks = 0;
  int n_tokens = 0;
};

// x[n_tokens, cols] quantized to Q8_K and packed into ceil(n_tokens / 8) tiles (tile i holds
// tokens 8i..); threaded over tokens. Reuses the storage in *tiles.
void quantize_kquant_tiles(const float* x, int64_t n_tokens, int64_t cols, std::vector<KQuantTile>* tiles,
                           ThreadPool* pool);

// y[t * ldy + r] for rows [begin, end) of W and every token t of `tiles` (bit-identical to
// kquant_matvec_rows on that token alone).
void kquant_tile_rows(DType type, const uint8_t* w, size_t stride, const std::vector<KQuantTile>& tiles,
                      float* y, int64_t ldy, int64_t begin, int64_t end);

}  // namespace flashmem::detail

#endif
