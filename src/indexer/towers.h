// The indexer's two towers for one target layer.
//
// Query tower (REFERENCE.md, for a decode token's hidden state h [D] at position pos):
//   q_lora = RMSNorm(wq_a · h) ⊙ g                       [R]   (eps = rms_eps)
//   q      = wq_b · q_lora                                [H, 128]
//   each head: project_head(q_h, pos)                    (below)
//   w      = (weights_proj · h) · 128^-0.5 · H^-0.5      [H]
// Key tower (DESIGN.md, key_source "hidden_mean"), for a chunk of n tokens starting at first_pos:
//   k      = wk · mean_t(h_t)                             [128]
//   project_head(k, first_pos), then compress_key -> 132 bytes.
//
// project_head(x[128], pos) = round to bf16 -> YaRN RoPE on dims [64, 128) in f32 -> round to bf16
// -> normalized Hadamard. The reference applies exactly this to q (the bf16 casts around the
// rotation and the Hadamard matter for bit-faithful scores) and its backbone keys are Hadamard
// rotated too. We give our learned keys the SAME pipeline: with H orthogonal,
// (H·RoPE(q))·(H·RoPE(k)) = RoPE(q)·RoPE(k), so the score depends on positions only through
// pos_q − pos_k as RoPE intends, and the Hadamard spreads outliers across the 128 dims before the
// fp8 quantization (its purpose in the reference). A key with no Hadamard against a rotated q
// would mix rotated and pass-through dims and lose the relative-position property.
#pragma once
#include <cstdint>
#include <vector>

#include "indexer/fp8.h"
#include "indexer/indexer_model.h"
#include "indexer/scoring.h"
#include "util/thread_pool.h"

namespace flashmem {

// The shared head pipeline above, in place on x[128].
void project_head(const YarnRope& rope, const YarnRope::Angles& angles, float* x);

// Query tower. hidden[D]; pos >= 0 (positions beyond the RoPE table are clamped). Reuses out's
// buffers. Matrix products thread over `pool` (nullptr = calling thread).
void compute_query(const IndexerModel& model, const IndexerLayer& layer, const float* hidden,
                   int64_t pos, IndexerQuery& out, ThreadPool* pool);
IndexerQuery compute_query(const IndexerModel& model, const IndexerLayer& layer,
                           const float* hidden, int64_t pos, ThreadPool* pool);

// Key tower over hidden_rows[n_tokens, D] (the chunk's tokens, n_tokens >= 1) whose first token
// is at first_pos. Throws Error if the layer has no wk (key_source "backbone": keys come from the
// backbone) or n_tokens < 1.
CompressedKey compute_key(const IndexerModel& model, const IndexerLayer& layer,
                          const float* hidden_rows, int64_t n_tokens, int64_t first_pos,
                          ThreadPool* pool);
// The same from an already pooled input mean_hidden[D].
CompressedKey compute_key_from_mean(const IndexerModel& model, const IndexerLayer& layer,
                                    const float* mean_hidden, int64_t first_pos, ThreadPool* pool);

// One indexer cycle for one decode token: for each requested target layer i, the query tower on
// hidden[i] ([D]) at `pos`, then logits of keys[i] ([n_keys, 132]). Returns logits [layers, n_keys].
// This is the composition the engine, the trainer's evaluation and the CLI share.
struct LayerInputs {
  int32_t layer_id = 0;
  const float* hidden = nullptr;  // [D]
  const uint8_t* keys = nullptr;  // [n_keys, 132]
};
std::vector<std::vector<float>> score_layers(const IndexerModel& model,
                                             const std::vector<LayerInputs>& inputs,
                                             int64_t n_keys, int64_t pos, ThreadPool* pool);

}  // namespace flashmem
