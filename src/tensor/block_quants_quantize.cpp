// Round-to-nearest quantizers for the block types of block_quants.h (see its contract: simple,
// not llama.cpp's error-minimising searches). Each is the inverse of the layout in dtype.h.
#include <algorithm>
#include <cmath>
#include <cstring>

#include "tensor/block_quants.h"
#include "tensor/convert.h"

namespace flashmem::detail {
namespace {

int nearest(float v) { return static_cast<int>(std::nearbyint(v)); }
int clamp_nearest(float v, int lo, int hi) { return std::clamp(nearest(v), lo, hi); }
float inverse(float v) { return v != 0.0f ? 1.0f / v : 0.0f; }
float rounded_fp16(float v) { return fp16_to_f32(f32_to_fp16(v)); }

// The value of largest magnitude in x[n], with its sign.
float signed_absmax(const float* x, int n) {
  float max = 0.0f;
  for (int j = 0; j < n; ++j)
    if (std::fabs(x[j]) > std::fabs(max)) max = x[j];
  return max;
}

// Symmetric 32-element block: the fp16 scale d mapping the block's signed extreme to `level`;
// returns 1 / d (0 for an all-zero block).
float symmetric_scale32(const float* x, float level, uint16_t* d_out) {
  *d_out = f32_to_fp16(signed_absmax(x, kQ4Block) / level);
  return inverse(fp16_to_f32(*d_out));
}

// Packs 32 codes < 16 as nibbles (element j < 16 low, j + 16 high) and, when qh is given, their
// fifth bits as bit j of qh.
void pack_codes32(const int* q, uint8_t* qs, uint8_t* qh) {
  uint32_t high = 0;
  for (int j = 0; j < 16; ++j) qs[j] = static_cast<uint8_t>((q[j] & 0x0f) | (q[j + 16] & 0x0f) << 4);
  for (int j = 0; j < 32; ++j) high |= static_cast<uint32_t>(q[j] >> 4) << j;
  if (qh != nullptr) std::memcpy(qh, &high, 4);
}

// Affine block (Q4_1/Q5_1): codes q in [0, levels] with w ≈ d·q + min; returns d, m.
void quantize_affine32(const float* x, int levels, int* q, uint16_t* d_out, uint16_t* m_out) {
  const float mn = *std::min_element(x, x + kQ4Block), mx = *std::max_element(x, x + kQ4Block);
  const float d = (mx - mn) / static_cast<float>(levels);
  *d_out = f32_to_fp16(d);
  *m_out = f32_to_fp16(mn);
  const float id = inverse(rounded_fp16(d)), m = rounded_fp16(mn);
  for (int j = 0; j < kQ4Block; ++j) q[j] = clamp_nearest((x[j] - m) * id, 0, levels);
}

// Per sub-block asymmetric ranges for Q2_K/Q4_K/Q5_K: scale_s = (max - min(0, min)) / levels and
// the (non-negative) min -min(0, min), then both quantized to `scale_levels` steps of a shared
// fp16 super-scale; codes round to the nearest level. Writes q[256], sc[n_sub], m[n_sub].
void quantize_k_affine(const float* x, int n_sub, int levels, int scale_levels, int* q, int* sc,
                       int* m, uint16_t* d_out, uint16_t* dmin_out) {
  const int sub = kQKBlock / n_sub;
  float scales[16], mins[16];  // [n_sub]
  float max_scale = 0.0f, max_min = 0.0f;
  for (int s = 0; s < n_sub; ++s) {
    const float mn = std::min(0.0f, *std::min_element(x + s * sub, x + (s + 1) * sub));
    const float mx = *std::max_element(x + s * sub, x + (s + 1) * sub);
    scales[s] = (mx - mn) / static_cast<float>(levels);
    mins[s] = -mn;
    max_scale = std::max(max_scale, scales[s]);
    max_min = std::max(max_min, mins[s]);
  }
  *d_out = f32_to_fp16(max_scale / static_cast<float>(scale_levels));
  *dmin_out = f32_to_fp16(max_min / static_cast<float>(scale_levels));
  const float d = fp16_to_f32(*d_out), dmin = fp16_to_f32(*dmin_out);
  for (int s = 0; s < n_sub; ++s) {
    sc[s] = clamp_nearest(scales[s] * inverse(d), 0, scale_levels);
    m[s] = clamp_nearest(mins[s] * inverse(dmin), 0, scale_levels);
    const float id = inverse(d * static_cast<float>(sc[s]));
    for (int j = 0; j < sub; ++j)
      q[s * sub + j] = clamp_nearest((x[s * sub + j] + dmin * static_cast<float>(m[s])) * id, 0, levels);
  }
}

// Per 16-element sub-block symmetric scales for Q3_K/Q6_K: scale_g maps the sub-block's signed
// extreme to -half (codes in [-half, half - 1]); the scales share an fp16 super-scale that maps
// the largest one to -scale_half. Writes q[256] (signed), sc[16] (signed).
void quantize_k_symmetric(const float* x, int half, int scale_half, int* q, int* sc, uint16_t* d_out) {
  float scales[16];  // [16]
  for (int g = 0; g < 16; ++g) scales[g] = signed_absmax(x + 16 * g, 16) / static_cast<float>(-half);
  *d_out = f32_to_fp16(signed_absmax(scales, 16) / static_cast<float>(-scale_half));
  const float d = fp16_to_f32(*d_out);
  for (int g = 0; g < 16; ++g) {
    sc[g] = clamp_nearest(scales[g] * inverse(d), -scale_half, scale_half - 1);
    const float id = inverse(d * static_cast<float>(sc[g]));
    for (int j = 0; j < 16; ++j) q[16 * g + j] = clamp_nearest(x[16 * g + j] * id, -half, half - 1);
  }
}

// 2-bit codes of a 256-element super-block into qs[64] (Q2_K/Q3_K order).
void pack_two_bit(const int* codes, uint8_t* qs) {
  std::memset(qs, 0, kQKBlock / 4);
  for (int i = 0; i < kQKBlock; ++i)
    qs[32 * (i / 128) + i % 32] |= static_cast<uint8_t>((codes[i] & 3) << (2 * ((i % 128) / 32)));
}

// 4-bit codes of a 256-element super-block into qs[128] (Q4_K/Q5_K order).
void pack_k4_nibbles(const int* codes, uint8_t* qs) {
  std::memset(qs, 0, kQKBlock / 2);
  for (int i = 0; i < kQKBlock; ++i)
    qs[32 * (i / 64) + i % 32] |= static_cast<uint8_t>((codes[i] & 0x0f) << (4 * ((i % 64) / 32)));
}

// 8 6-bit (scale, min) pairs into Q4_K/Q5_K's 12 bytes.
void pack_k4_scales(const int* sc, const int* m, uint8_t* scales) {
  std::memset(scales, 0, 12);
  for (int s = 0; s < 4; ++s) {
    scales[s] = static_cast<uint8_t>(sc[s]);
    scales[s + 4] = static_cast<uint8_t>(m[s]);
  }
  for (int s = 4; s < 8; ++s) {
    scales[s + 4] = static_cast<uint8_t>((sc[s] & 0x0f) | (m[s] & 0x0f) << 4);
    scales[s - 4] |= static_cast<uint8_t>((sc[s] >> 4) << 6);
    scales[s] |= static_cast<uint8_t>((m[s] >> 4) << 6);
  }
}

void quantize_q5_0(const float* x, BlockQ5_0* b) {
  // The signed extreme maps to -16, the lowest 5-bit level (as Q4_0 maps it to -8).
  const float id = symmetric_scale32(x, -16.0f, &b->d);
  int q[kQ4Block];  // [32] codes
  for (int j = 0; j < kQ4Block; ++j) q[j] = clamp_nearest(x[j] * id, -16, 15) + 16;
  pack_codes32(q, b->qs, b->qh);
}

void quantize_iq4_nl(const float* x, BlockIQ4_NL* b) {
  // The signed extreme maps to -127, the codebook's largest magnitude; each value takes the
  // nearest codebook entry.
  const float id = symmetric_scale32(x, -127.0f, &b->d);
  int q[kQ4Block];  // [32] codebook indices
  for (int j = 0; j < kQ4Block; ++j) {
    const float v = x[j] * id;
    q[j] = 0;
    for (int k = 1; k < 16; ++k)
      if (std::fabs(kIq4nlValues[k] - v) < std::fabs(kIq4nlValues[q[j]] - v)) q[j] = k;
  }
  pack_codes32(q, b->qs, nullptr);
}

void quantize_q3_k(const float* x, BlockQ3_K* b) {
  int q[kQKBlock], sc[16];
  quantize_k_symmetric(x, 4, 32, q, sc, &b->d);
  int low[kQKBlock];  // [256] 2-bit parts of the codes q + 4
  std::memset(b->hmask, 0, sizeof(b->hmask));
  for (int i = 0; i < kQKBlock; ++i) {
    const int u = q[i] + 4;
    low[i] = u & 3;
    b->hmask[i % 32] |= static_cast<uint8_t>((u >> 2) << (4 * (i / 128) + (i % 128) / 32));
  }
  pack_two_bit(low, b->qs);
  std::memset(b->scales, 0, sizeof(b->scales));
  for (int g = 0; g < 16; ++g) {
    const int biased = sc[g] + 32;
    b->scales[g % 8] |= static_cast<uint8_t>((biased & 0x0f) << (g < 8 ? 0 : 4));
    b->scales[8 + g % 4] |= static_cast<uint8_t>((biased >> 4) << (2 * (g / 4)));
  }
}

void quantize_q6_k(const float* x, BlockQ6_K* b) {
  int q[kQKBlock], sc[16];
  quantize_k_symmetric(x, 32, 128, q, sc, &b->d);
  for (int g = 0; g < 16; ++g) b->scales[g] = static_cast<int8_t>(sc[g]);
  std::memset(b->ql, 0, sizeof(b->ql));
  std::memset(b->qh, 0, sizeof(b->qh));
  for (int i = 0; i < kQKBlock; ++i) {
    const int u = q[i] + 32, half = i / 128, k = (i % 128) / 32, l = i % 32;
    b->ql[64 * half + l + 32 * (k & 1)] |= static_cast<uint8_t>((u & 0x0f) << (k < 2 ? 0 : 4));
    b->qh[32 * half + l] |= static_cast<uint8_t>((u >> 4) << (2 * k));
  }
}

}  // namespace

void quantize_block_quant_ref(DType type, const float* src, void* dst, int64_t n) {
  int q[kQKBlock], sc[16], m[16];  // codes and sub-block scales of the current block
  switch (type) {
    case DType::Q4_1:
      for (int64_t b = 0; b < n / kQ4Block; ++b) {
        auto& blk = static_cast<BlockQ4_1*>(dst)[b];
        quantize_affine32(src + b * kQ4Block, 15, q, &blk.d, &blk.m);
        pack_codes32(q, blk.qs, nullptr);
      }
      return;
    case DType::Q5_1:
      for (int64_t b = 0; b < n / kQ4Block; ++b) {
        auto& blk = static_cast<BlockQ5_1*>(dst)[b];
        quantize_affine32(src + b * kQ4Block, 31, q, &blk.d, &blk.m);
        pack_codes32(q, blk.qs, blk.qh);
      }
      return;
    case DType::Q5_0:
      for (int64_t b = 0; b < n / kQ4Block; ++b) quantize_q5_0(src + b * kQ4Block, &static_cast<BlockQ5_0*>(dst)[b]);
      return;
    case DType::IQ4_NL:
      for (int64_t b = 0; b < n / kQ4Block; ++b) quantize_iq4_nl(src + b * kQ4Block, &static_cast<BlockIQ4_NL*>(dst)[b]);
      return;
    case DType::Q2_K:
      for (int64_t b = 0; b < n / kQKBlock; ++b) {
        auto& blk = static_cast<BlockQ2_K*>(dst)[b];
        quantize_k_affine(src + b * kQKBlock, 16, 3, 15, q, sc, m, &blk.d, &blk.dmin);
        for (int g = 0; g < 16; ++g) blk.scales[g] = static_cast<uint8_t>(sc[g] | m[g] << 4);
        pack_two_bit(q, blk.qs);
      }
      return;
    case DType::Q3_K:
      for (int64_t b = 0; b < n / kQKBlock; ++b) quantize_q3_k(src + b * kQKBlock, &static_cast<BlockQ3_K*>(dst)[b]);
      return;
    case DType::Q4_K:
      for (int64_t b = 0; b < n / kQKBlock; ++b) {
        auto& blk = static_cast<BlockQ4_K*>(dst)[b];
        quantize_k_affine(src + b * kQKBlock, 8, 15, 63, q, sc, m, &blk.d, &blk.dmin);
        pack_k4_scales(sc, m, blk.scales);
        pack_k4_nibbles(q, blk.qs);
      }
      return;
    case DType::Q5_K:
      for (int64_t b = 0; b < n / kQKBlock; ++b) {
        auto& blk = static_cast<BlockQ5_K*>(dst)[b];
        quantize_k_affine(src + b * kQKBlock, 8, 31, 63, q, sc, m, &blk.d, &blk.dmin);
        pack_k4_scales(sc, m, blk.scales);
        pack_k4_nibbles(q, blk.qs);
        std::memset(blk.qh, 0, sizeof(blk.qh));
        for (int i = 0; i < kQKBlock; ++i) blk.qh[i % 32] |= static_cast<uint8_t>((q[i] >> 4) << (i / 32));
      }
      return;
    case DType::Q6_K:
      for (int64_t b = 0; b < n / kQKBlock; ++b) quantize_q6_k(src + b * kQKBlock, &static_cast<BlockQ6_K*>(dst)[b]);
      return;
    default:
      return;
  }
}

}  // namespace flashmem::detail
