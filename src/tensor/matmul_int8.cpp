// Integer GEMM for Q8_0/Q4_0 weights (AVX-512 VNNI): Y[n_tokens, rows] = X · W^T with the
// activations quantized to Q8_0, exactly the products matvec forms, at 64 int8 multiply-adds per
// dpbusd instead of 16 f32 FMAs per vector.
//
// Per panel of kPanelRows weight rows, the weights are repacked once into dpbusd order: for each
// 32-element block and each group of 4 columns, the 4 signed bytes of each of the panel's rows
// side by side, so one 64-byte load feeds 16 rows and one broadcast of 4 activation bytes. dpbusd
// wants unsigned × signed bytes, so the activations carry +128 (x + 128 ∈ [1, 255]) and each row's
// accumulator starts at -128·Σq_w for the block, which makes every block sum exact.
#include <algorithm>
#include <cstring>
#include <vector>

#include "tensor/convert.h"
#include "tensor/kernels.h"
#include "tensor/kernels_internal.h"
#include "tensor/simd.h"

namespace flashmem::detail {

#if defined(FLASHMEM_INT8_GEMM_VNNI)

namespace {

// 2 vectors of 16 rows: with kTileTokens = 6 the tile keeps 12 int32 block accumulators, 12 f32
// accumulators, 2 weight vectors, 2 scale vectors and a broadcast in the 32 zmm registers.
constexpr int kPanelRows = 32;
constexpr int kTileTokens = 6;
constexpr int kGroups = kQ8Block / 4;  // dpbusd steps per block

// Packing a panel costs about as much as 2-3 matvec passes over its rows (scalar repacking,
// ~1 byte per weight); measured on 2048 × 768 the crossover with matvec per token is 6-8 tokens.
constexpr int64_t kMinTokens = 8;

// One packed panel: for kPanelRows rows and n_blocks blocks.
struct PackedPanel {
  std::vector<int8_t> qs;         // [n_blocks, kGroups, kPanelRows, 4]
  std::vector<int32_t> offsets;   // [n_blocks, kPanelRows] -128 · Σ q_w of the row's block
  std::vector<float> scales;      // [n_blocks, kPanelRows] d_w (0 for padding rows)
};

// Activations quantized to Q8_0, stored as x + 128 bytes.
struct PackedActivations {
  std::vector<uint8_t> qs;  // [n_tokens, cols]
  std::vector<float> d;     // [n_tokens, n_blocks]
};

void pack_activations(const float* x, int64_t n_tokens, int64_t cols, PackedActivations* out,
                      ThreadPool* pool) {
  const int64_t n_blocks = cols / kQ8Block;
  out->qs.resize(static_cast<size_t>(n_tokens * cols));
  out->d.resize(static_cast<size_t>(n_tokens * n_blocks));
  uint8_t* qs = out->qs.data();
  float* d = out->d.data();
  const auto work = [&](int64_t begin, int64_t end) {
    std::vector<BlockQ8_0> blocks(static_cast<size_t>(n_blocks));  // [n_blocks]
    for (int64_t t = begin; t < end; ++t) {
      quantize_row(DType::Q8_0, x + t * cols, blocks.data(), cols);
      for (int64_t b = 0; b < n_blocks; ++b) {
        d[t * n_blocks + b] = fp16_to_f32(blocks[b].d);
        for (int j = 0; j < kQ8Block; ++j)
          qs[t * cols + b * kQ8Block + j] = static_cast<uint8_t>(blocks[b].qs[j] + 128);
      }
    }
  };
  parallel_for(pool, n_tokens, 1, work);
}

// Rows [0, n_rows) of W (n_rows <= kPanelRows) into `panel`; missing rows are zero.
void pack_panel(DType type, const uint8_t* w, size_t stride, int64_t n_rows, int64_t n_blocks,
                PackedPanel* panel) {
  panel->qs.assign(static_cast<size_t>(n_blocks * kQ8Block * kPanelRows), 0);
  panel->offsets.assign(static_cast<size_t>(n_blocks * kPanelRows), 0);
  panel->scales.assign(static_cast<size_t>(n_blocks * kPanelRows), 0.0f);
  for (int64_t r = 0; r < n_rows; ++r) {
    const uint8_t* row = w + r * stride;
    for (int64_t b = 0; b < n_blocks; ++b) {
      int8_t q[kQ8Block];  // the block's weights as signed integers
      uint16_t d_bits;
      if (type == DType::Q8_0) {
        const auto& blk = reinterpret_cast<const BlockQ8_0*>(row)[b];
        std::memcpy(q, blk.qs, kQ8Block);
        d_bits = blk.d;
      } else {
        const auto& blk = reinterpret_cast<const BlockQ4_0*>(row)[b];
        for (int j = 0; j < kQ4Block / 2; ++j) {
          q[j] = static_cast<int8_t>((blk.qs[j] & 0x0f) - 8);
          q[j + kQ4Block / 2] = static_cast<int8_t>((blk.qs[j] >> 4) - 8);
        }
        d_bits = blk.d;
      }
      int32_t sum = 0;
      for (int j = 0; j < kQ8Block; ++j) sum += q[j];
      panel->offsets[b * kPanelRows + r] = -128 * sum;
      panel->scales[b * kPanelRows + r] = fp16_to_f32(d_bits);
      int8_t* dst = panel->qs.data() + b * kQ8Block * kPanelRows;
      for (int g = 0; g < kGroups; ++g) std::memcpy(dst + (g * kPanelRows + r) * 4, q + 4 * g, 4);
    }
  }
}

// y[MT, 32] = Σ_b d_x·d_w·(Σ q_x·q_w) for MT tokens against one panel; writes n_valid columns.
template <int MT>
void int8_tile(const PackedActivations& xq, int64_t t0, int64_t cols, const PackedPanel& panel,
               float* y, int64_t ldy, int64_t n_valid) {
  const int64_t n_blocks = cols / kQ8Block;
  const uint8_t* xrow[MT];
  const float* drow[MT];
  for (int t = 0; t < MT; ++t) {
    xrow[t] = xq.qs.data() + (t0 + t) * cols;
    drow[t] = xq.d.data() + (t0 + t) * n_blocks;
  }
  __m512 acc[MT][2];
  for (int t = 0; t < MT; ++t) acc[t][0] = acc[t][1] = _mm512_setzero_ps();
  for (int64_t b = 0; b < n_blocks; ++b) {
    const __m512i offset0 = _mm512_loadu_si512(panel.offsets.data() + b * kPanelRows);
    const __m512i offset1 = _mm512_loadu_si512(panel.offsets.data() + b * kPanelRows + 16);
    __m512i isum[MT][2];
#pragma GCC unroll 8
    for (int t = 0; t < MT; ++t) {
      isum[t][0] = offset0;
      isum[t][1] = offset1;
    }
    const int8_t* qs = panel.qs.data() + b * kQ8Block * kPanelRows;
#pragma GCC unroll 8
    for (int g = 0; g < kGroups; ++g) {
      const __m512i w0 = _mm512_loadu_si512(qs + g * kPanelRows * 4);
      const __m512i w1 = _mm512_loadu_si512(qs + g * kPanelRows * 4 + 64);
#pragma GCC unroll 8
      for (int t = 0; t < MT; ++t) {
        int32_t four;
        std::memcpy(&four, xrow[t] + b * kQ8Block + 4 * g, 4);
        const __m512i xb = _mm512_set1_epi32(four);
        isum[t][0] = _mm512_dpbusd_epi32(isum[t][0], xb, w0);
        isum[t][1] = _mm512_dpbusd_epi32(isum[t][1], xb, w1);
      }
    }
    const __m512 dw0 = _mm512_loadu_ps(panel.scales.data() + b * kPanelRows);
    const __m512 dw1 = _mm512_loadu_ps(panel.scales.data() + b * kPanelRows + 16);
#pragma GCC unroll 8
    for (int t = 0; t < MT; ++t) {
      const __m512 dx = _mm512_set1_ps(drow[t][b]);
      acc[t][0] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(isum[t][0]), _mm512_mul_ps(dw0, dx), acc[t][0]);
      acc[t][1] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(isum[t][1]), _mm512_mul_ps(dw1, dx), acc[t][1]);
    }
  }
  const __mmask16 mask0 = static_cast<__mmask16>((1u << std::min<int64_t>(16, n_valid)) - 1u);
  const __mmask16 mask1 = static_cast<__mmask16>((1u << std::clamp<int64_t>(n_valid - 16, 0, 16)) - 1u);
  for (int t = 0; t < MT; ++t) {
    _mm512_mask_storeu_ps(y + t * ldy, mask0, acc[t][0]);
    _mm512_mask_storeu_ps(y + t * ldy + 16, mask1, acc[t][1]);
  }
}

}  // namespace

bool matmul_int8(DType type, const void* w, const float* x, float* y, int64_t n_tokens, int64_t rows,
                 int64_t cols, ThreadPool* pool) {
  if ((type != DType::Q8_0 && type != DType::Q4_0) || n_tokens < kMinTokens) return false;
  thread_local PackedActivations activation_storage;
  const PackedActivations& xq = activation_storage;  // a plain reference: see matvec
  pack_activations(x, n_tokens, cols, &activation_storage, pool);
  const auto* base = static_cast<const uint8_t*>(w);
  const size_t stride = row_bytes(type, cols);
  const auto work = [&](int64_t begin, int64_t end) {
    thread_local PackedPanel panel;
    for (int64_t r0 = begin; r0 < end; r0 += kPanelRows) {
      const int64_t n_valid = std::min<int64_t>(kPanelRows, end - r0);
      pack_panel(type, base + r0 * stride, stride, n_valid, cols / kQ8Block, &panel);
      int64_t t = 0;
      for (; t + kTileTokens <= n_tokens; t += kTileTokens)
        int8_tile<kTileTokens>(xq, t, cols, panel, y + t * rows + r0, rows, n_valid);
      float* yt = y + t * rows + r0;
      switch (n_tokens - t) {
        case 5: int8_tile<5>(xq, t, cols, panel, yt, rows, n_valid); break;
        case 4: int8_tile<4>(xq, t, cols, panel, yt, rows, n_valid); break;
        case 3: int8_tile<3>(xq, t, cols, panel, yt, rows, n_valid); break;
        case 2: int8_tile<2>(xq, t, cols, panel, yt, rows, n_valid); break;
        case 1: int8_tile<1>(xq, t, cols, panel, yt, rows, n_valid); break;
        default: break;
      }
    }
  };
  parallel_for(pool, rows, kPanelRows, work);
  return true;
}

#elif !defined(FLASHMEM_INT8_GEMM_AVX2)  // no integer GEMM in this build

bool matmul_int8(DType, const void*, const float*, float*, int64_t, int64_t, int64_t, ThreadPool*) {
  return false;
}

#endif

}  // namespace flashmem::detail
