// Chunk scoring of the Memory Indexer — the one implementation used by the engine, the trainer's
// evaluation and the CLI:
//   logit_c = Σ_h w_h · relu(q_h · k_c),  k_c = fp8 codes of chunk c × its scale,
//   score_c = sigmoid(logit_c),
// and the ensemble of one chunk's scores over the indexer's target layers.
#pragma once
#include <cmath>
#include <cstdint>
#include <span>
#include <string_view>
#include <vector>

#include "indexer/fp8.h"
#include "util/thread_pool.h"

namespace flashmem {

// The query side of one target layer for one decode token (built by compute_query, towers.h).
struct IndexerQuery {
  int64_t n_heads = 0;
  std::vector<float> q;        // [n_heads, 128] after RoPE, bf16 rounding and Hadamard
  std::vector<float> weights;  // [n_heads] w_h, already scaled by 128^-0.5 · n_heads^-0.5
};

// logits[n_keys] for keys[n_keys, 132] (contiguous compressed keys, fp8.h). Threads over `pool`
// (nullptr = calling thread only) when the work is large enough to pay for the dispatch.
// SIMD paths (AVX-512, AVX2): per block of 4 chunks the codes are decoded (as f16 bit patterns,
// so no f32 subnormals are ever formed — exact even under FTZ/DAZ) and multiplied against the
// query transposed to [128, heads] so that heads lie in vector lanes; the result is the ref's
// up to float summation order. Throws Error if query.q / query.weights do not match n_heads.
void score_logits(const IndexerQuery& query, const uint8_t* keys, int64_t n_keys, float* logits,
                  ThreadPool* pool);
// Scalar twin: decompress each key, H plain dot products.
void score_logits_ref(const IndexerQuery& query, const uint8_t* keys, int64_t n_keys,
                      float* logits);

inline float sigmoid(float logit) { return 1.0f / (1.0f + std::exp(-logit)); }
// scores[n] = sigmoid(logits[n]) (may alias).
void logits_to_scores(const float* logits, float* scores, int64_t n);

// How one chunk's per-layer results combine. Both ensemble sigmoid SCORES (not logits):
//   max:  max_l sigmoid(logit_l)  — equals sigmoid(max_l logit_l), the reference's default;
//   mean: mean_l sigmoid(logit_l) — the reference's alternative (a mean of logits would let one
//         very negative layer veto the others, which the score mean does not).
// A chunk is selected when its ensembled score is > 0.5 (kSelectThreshold).
enum class EnsembleMode { kMax, kMean };
constexpr float kSelectThreshold = 0.5f;
EnsembleMode parse_ensemble_mode(std::string_view name);  // "max" | "mean", else Error
std::string_view ensemble_mode_name(EnsembleMode mode);

// scores[n] = ensemble over layers of sigmoid(layer_logits[l][i]); every span holds n values.
// Throws Error if layer_logits is empty or a span's size is not n.
void ensemble_scores(std::span<const std::span<const float>> layer_logits, EnsembleMode mode,
                     float* scores, int64_t n);

}  // namespace flashmem
