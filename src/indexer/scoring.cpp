#include "indexer/scoring.h"

#include <algorithm>
#include <cmath>
#include <limits>

#include "util/error.h"

#include "tensor/simd.h"

namespace flashmem {
namespace {

constexpr int kLanes = 16;        // f32 lanes of one AVX-512 register (two AVX2 registers)
constexpr int kBlockChunks = 4;   // chunks per block: 4 chunks × 4 head-vectors = 16 accumulators
constexpr int kMaxGroupVecs = 4;  // head vectors per pass (64 heads); 16 acc + 4 q + 1 k < 32 regs
// Below this many (chunk, head-lane) products a thread dispatch costs more than it saves.
constexpr int64_t kMinParallelWork = int64_t{1} << 15;

void check_query(const IndexerQuery& query) {
  if (query.n_heads <= 0) fail("indexer query has {} heads", query.n_heads);
  if (query.q.size() != static_cast<size_t>(query.n_heads) * kKeyDim ||
      query.weights.size() != static_cast<size_t>(query.n_heads))
    fail("indexer query: q holds {} values and weights {} for {} heads", query.q.size(),
         query.weights.size(), query.n_heads);
}

// The query in the kernel's layout: heads padded to a multiple of 16 with zero weights.
struct PackedQuery {
  int64_t padded_heads = 0;
  std::vector<float> q_t;      // [128, padded_heads] q transposed
  std::vector<float> weights;  // [padded_heads]
};

PackedQuery pack_query(const IndexerQuery& query) {
  PackedQuery p;
  p.padded_heads = (query.n_heads + kLanes - 1) / kLanes * kLanes;
  p.q_t.assign(static_cast<size_t>(kKeyDim * p.padded_heads), 0.0f);
  p.weights.assign(static_cast<size_t>(p.padded_heads), 0.0f);
  for (int64_t h = 0; h < query.n_heads; ++h) {
    for (int d = 0; d < kKeyDim; ++d) p.q_t[d * p.padded_heads + h] = query.q[h * kKeyDim + d];
    p.weights[h] = query.weights[h];
  }
  return p;
}

#if defined(__AVX512F__)

// 16 fp8 codes -> 16 f32. The code's 7 magnitude bits are placed in an f16 (exponent field
// 0eeee, top mantissa bits mmm), which is the e4m3 value · 2^-8 for normals and subnormals alike;
// ×256 after the exact f16 -> f32 conversion restores it. Codes S.1111.111 give ±480 there,
// a magnitude no finite code has, and become NaN.
inline __m512 decode_fp8x16(const uint8_t* codes) {
  const __m256i bytes = _mm256_cvtepu8_epi16(_mm_loadu_si128(reinterpret_cast<const __m128i*>(codes)));
  const __m256i sign = _mm256_slli_epi16(_mm256_and_si256(bytes, _mm256_set1_epi16(0x80)), 8);
  const __m256i magnitude = _mm256_slli_epi16(_mm256_and_si256(bytes, _mm256_set1_epi16(0x7F)), 7);
  const __m512 value = _mm512_mul_ps(_mm512_cvtph_ps(_mm256_or_si256(sign, magnitude)),
                                     _mm512_set1_ps(256.0f));
  const __mmask16 nan = _mm512_cmp_ps_mask(_mm512_abs_ps(value), _mm512_set1_ps(480.0f), _CMP_EQ_OQ);
  return _mm512_mask_mov_ps(value, nan, _mm512_set1_ps(std::numeric_limits<float>::quiet_NaN()));
}

// Adds Σ_h w_h relu(scale_c · q_h·fp8_c) over the heads of one group of NV vectors (16·NV heads
// starting at `head0`) to partial[c] for the block's chunks.
template <int NV>
void score_group(const PackedQuery& p, int64_t head0, const float (*fp8)[kKeyDim],
                 const float* scales, float* partial) {
  __m512 acc[kBlockChunks][NV];
  for (int c = 0; c < kBlockChunks; ++c)
    for (int j = 0; j < NV; ++j) acc[c][j] = _mm512_setzero_ps();
  const float* q_row = p.q_t.data() + head0;
  // Fully unrolled so the 4·NV accumulators live in registers at any optimisation level.
  for (int d = 0; d < kKeyDim; ++d, q_row += p.padded_heads) {
    __m512 qv[NV];
#pragma GCC unroll 4
    for (int j = 0; j < NV; ++j) qv[j] = _mm512_loadu_ps(q_row + j * kLanes);
#pragma GCC unroll 4
    for (int c = 0; c < kBlockChunks; ++c) {
      const __m512 k = _mm512_set1_ps(fp8[c][d]);
#pragma GCC unroll 4
      for (int j = 0; j < NV; ++j) acc[c][j] = _mm512_fmadd_ps(k, qv[j], acc[c][j]);
    }
  }
  for (int c = 0; c < kBlockChunks; ++c) {
    const __m512 scale = _mm512_set1_ps(scales[c]);
    __m512 sum = _mm512_setzero_ps();
    for (int j = 0; j < NV; ++j) {
      // max(x, 0) returns 0 for NaN x, like the ref's relu.
      const __m512 relu = _mm512_max_ps(_mm512_mul_ps(acc[c][j], scale), _mm512_setzero_ps());
      sum = _mm512_fmadd_ps(relu, _mm512_loadu_ps(p.weights.data() + head0 + j * kLanes), sum);
    }
    partial[c] += _mm512_reduce_add_ps(sum);
  }
}

void score_range(const PackedQuery& p, const uint8_t* keys, int64_t begin, int64_t end,
                 float* logits) {
  alignas(64) float fp8[kBlockChunks][kKeyDim];  // [4, 128] decoded codes of the block
  float scales[kBlockChunks];
  const int64_t n_vecs = p.padded_heads / kLanes;
  for (int64_t c0 = begin; c0 < end; c0 += kBlockChunks) {
    const int valid = static_cast<int>(std::min<int64_t>(kBlockChunks, end - c0));
    for (int c = 0; c < kBlockChunks; ++c) {
      if (c < valid) {
        const uint8_t* key = keys + (c0 + c) * kCompressedKeyBytes;
        for (int d = 0; d < kKeyDim; d += kLanes) _mm512_store_ps(&fp8[c][d], decode_fp8x16(key + d));
        scales[c] = compressed_key_scale(key);
      } else {  // pad the last block with zero keys; their results are dropped
        std::fill(std::begin(fp8[c]), std::end(fp8[c]), 0.0f);
        scales[c] = 0.0f;
      }
    }
    float partial[kBlockChunks] = {0, 0, 0, 0};
    for (int64_t v = 0; v < n_vecs; v += kMaxGroupVecs) {
      const int64_t head0 = v * kLanes;
      switch (std::min<int64_t>(kMaxGroupVecs, n_vecs - v)) {
        case 1: score_group<1>(p, head0, fp8, scales, partial); break;
        case 2: score_group<2>(p, head0, fp8, scales, partial); break;
        case 3: score_group<3>(p, head0, fp8, scales, partial); break;
        default: score_group<4>(p, head0, fp8, scales, partial); break;
      }
    }
    for (int c = 0; c < valid; ++c) logits[c0 + c] = partial[c];
  }
}

#elif defined(__AVX2__) && defined(__FMA__) && defined(__F16C__)

// 8 fp8 codes -> 8 f32, by the same f16 bit-pattern trick as decode_fp8x16 above: sign to bit
// 15, the 7 magnitude bits to bits 7..13 make an f16 worth value · 2^-8 (normals and
// subnormals alike), converted exactly and scaled back by 256; ±480 marks the NaN codes.
inline __m256 decode_fp8x8(const uint8_t* codes) {
  const __m128i bytes = _mm_cvtepu8_epi16(_mm_loadl_epi64(reinterpret_cast<const __m128i*>(codes)));
  const __m128i sign = _mm_slli_epi16(_mm_and_si128(bytes, _mm_set1_epi16(0x80)), 8);
  const __m128i magnitude = _mm_slli_epi16(_mm_and_si128(bytes, _mm_set1_epi16(0x7F)), 7);
  const __m256 value = _mm256_mul_ps(_mm256_cvtph_ps(_mm_or_si128(sign, magnitude)), _mm256_set1_ps(256.0f));
  const __m256 abs = _mm256_andnot_ps(_mm256_set1_ps(-0.0f), value);
  const __m256 nan = _mm256_cmp_ps(abs, _mm256_set1_ps(480.0f), _CMP_EQ_OQ);
  return _mm256_blendv_ps(value, _mm256_set1_ps(std::numeric_limits<float>::quiet_NaN()), nan);
}

// Adds Σ_h w_h relu(scale_c · q_h·fp8_c) over 16 heads starting at `head0` (two vectors) to
// partial[c] for the block's chunks: 4 chunks × 2 vectors = 8 accumulators, plus 2 query
// vectors and a broadcast key, fit the 16 ymm registers without spilling.
void score_group16(const PackedQuery& p, int64_t head0, const float (*fp8)[kKeyDim],
                   const float* scales, float* partial) {
  __m256 acc[kBlockChunks][2];
  for (int c = 0; c < kBlockChunks; ++c) acc[c][0] = acc[c][1] = _mm256_setzero_ps();
  const float* q_row = p.q_t.data() + head0;
  for (int d = 0; d < kKeyDim; ++d, q_row += p.padded_heads) {
    const __m256 q0 = _mm256_loadu_ps(q_row), q1 = _mm256_loadu_ps(q_row + 8);
#pragma GCC unroll 4
    for (int c = 0; c < kBlockChunks; ++c) {
      const __m256 k = _mm256_broadcast_ss(&fp8[c][d]);
      acc[c][0] = _mm256_fmadd_ps(k, q0, acc[c][0]);
      acc[c][1] = _mm256_fmadd_ps(k, q1, acc[c][1]);
    }
  }
  const __m256 w0 = _mm256_loadu_ps(p.weights.data() + head0);
  const __m256 w1 = _mm256_loadu_ps(p.weights.data() + head0 + 8);
  for (int c = 0; c < kBlockChunks; ++c) {
    const __m256 scale = _mm256_set1_ps(scales[c]);
    // max(x, 0) returns 0 for NaN x (the second operand), like the ref's relu.
    const __m256 r0 = _mm256_max_ps(_mm256_mul_ps(acc[c][0], scale), _mm256_setzero_ps());
    const __m256 r1 = _mm256_max_ps(_mm256_mul_ps(acc[c][1], scale), _mm256_setzero_ps());
    partial[c] += simd::hsum256(_mm256_fmadd_ps(r1, w1, _mm256_mul_ps(r0, w0)));
  }
}

void score_range(const PackedQuery& p, const uint8_t* keys, int64_t begin, int64_t end,
                 float* logits) {
  alignas(32) float fp8[kBlockChunks][kKeyDim];  // [4, 128] decoded codes of the block
  float scales[kBlockChunks];
  for (int64_t c0 = begin; c0 < end; c0 += kBlockChunks) {
    const int valid = static_cast<int>(std::min<int64_t>(kBlockChunks, end - c0));
    for (int c = 0; c < kBlockChunks; ++c) {
      if (c < valid) {
        const uint8_t* key = keys + (c0 + c) * kCompressedKeyBytes;
        for (int d = 0; d < kKeyDim; d += 8) _mm256_store_ps(&fp8[c][d], decode_fp8x8(key + d));
        scales[c] = compressed_key_scale(key);
      } else {  // pad the last block with zero keys; their results are dropped
        std::fill(std::begin(fp8[c]), std::end(fp8[c]), 0.0f);
        scales[c] = 0.0f;
      }
    }
    float partial[kBlockChunks] = {0, 0, 0, 0};
    for (int64_t head0 = 0; head0 < p.padded_heads; head0 += kLanes) score_group16(p, head0, fp8, scales, partial);
    for (int c = 0; c < valid; ++c) logits[c0 + c] = partial[c];
  }
}

#else  // portable path: the same blocking in plain loops (the compiler vectorizes over heads)

void score_range(const PackedQuery& p, const uint8_t* keys, int64_t begin, int64_t end,
                 float* logits) {
  const std::array<float, 256>& table = fp8_e4m3_table();
  std::vector<float> acc(static_cast<size_t>(p.padded_heads));  // [padded_heads]
  for (int64_t c = begin; c < end; ++c) {
    const uint8_t* key = keys + c * kCompressedKeyBytes;
    std::fill(acc.begin(), acc.end(), 0.0f);
    for (int d = 0; d < kKeyDim; ++d) {
      const float k = table[key[d]];
      const float* q_row = p.q_t.data() + d * p.padded_heads;
      for (int64_t h = 0; h < p.padded_heads; ++h) acc[h] += k * q_row[h];
    }
    const float scale = compressed_key_scale(key);
    float logit = 0.0f;
    for (int64_t h = 0; h < p.padded_heads; ++h) {
      const float x = acc[h] * scale;
      logit += p.weights[h] * (x > 0.0f ? x : 0.0f);
    }
    logits[c] = logit;
  }
}

#endif

}  // namespace

void score_logits(const IndexerQuery& query, const uint8_t* keys, int64_t n_keys, float* logits,
                  ThreadPool* pool) {
  check_query(query);
  if (n_keys <= 0) return;
  const PackedQuery packed = pack_query(query);
  // Small histories run on the calling thread: a dispatch would cost more than it shares.
  ThreadPool* threads = n_keys * packed.padded_heads < kMinParallelWork ? nullptr : pool;
  parallel_for(threads, n_keys, kBlockChunks, [&](int64_t begin, int64_t end) {
    score_range(packed, keys, begin, end, logits);
  });
}

void score_logits_ref(const IndexerQuery& query, const uint8_t* keys, int64_t n_keys,
                      float* logits) {
  check_query(query);
  float k[kKeyDim];
  for (int64_t c = 0; c < n_keys; ++c) {
    decompress_key(keys + c * kCompressedKeyBytes, k);
    float logit = 0.0f;
    for (int64_t h = 0; h < query.n_heads; ++h) {
      float dot = 0.0f;
      for (int d = 0; d < kKeyDim; ++d) dot += query.q[h * kKeyDim + d] * k[d];
      logit += query.weights[h] * (dot > 0.0f ? dot : 0.0f);
    }
    logits[c] = logit;
  }
}

void logits_to_scores(const float* logits, float* scores, int64_t n) {
  for (int64_t i = 0; i < n; ++i) scores[i] = sigmoid(logits[i]);
}

EnsembleMode parse_ensemble_mode(std::string_view name) {
  if (name == "max") return EnsembleMode::kMax;
  if (name == "mean") return EnsembleMode::kMean;
  fail("ensemble mode must be max or mean, not '{}'", name);
}

std::string_view ensemble_mode_name(EnsembleMode mode) {
  return mode == EnsembleMode::kMax ? "max" : "mean";
}

void ensemble_scores(std::span<const std::span<const float>> layer_logits, EnsembleMode mode,
                     float* scores, int64_t n) {
  if (layer_logits.empty()) fail("ensemble over zero layers");
  for (const auto& layer : layer_logits)
    if (layer.size() != static_cast<size_t>(n))
      fail("ensemble: a layer holds {} logits, expected {}", layer.size(), n);
  const float inv_layers = 1.0f / static_cast<float>(layer_logits.size());
  for (int64_t i = 0; i < n; ++i) {
    float combined = 0.0f;  // sigmoid >= 0, so 0 is the identity of both max and sum
    for (const auto& layer : layer_logits) {
      const float s = sigmoid(layer[i]);
      combined = mode == EnsembleMode::kMax ? std::max(combined, s) : combined + s;
    }
    scores[i] = mode == EnsembleMode::kMax ? combined : combined * inv_layers;
  }
}

}  // namespace flashmem
