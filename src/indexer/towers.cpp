#include "indexer/towers.h"

#include <cmath>
#include <vector>

#include "indexer/hadamard.h"
#include "tensor/convert.h"
#include "tensor/kernels.h"
#include "util/error.h"

namespace flashmem {

void project_head(const YarnRope& rope, const YarnRope::Angles& angles, float* x) {
  for (int i = 0; i < kKeyDim; ++i) x[i] = round_to_bf16(x[i]);
  rope.apply(angles, x);
  for (int i = 0; i < kKeyDim; ++i) x[i] = round_to_bf16(x[i]);
  hadamard_128(x);
}

void compute_query(const IndexerModel& model, const IndexerLayer& layer, const float* hidden,
                   int64_t pos, IndexerQuery& out, ThreadPool* pool) {
  const IndexerConfig& c = model.config();
  const int64_t rank = c.q_lora_rank, heads = c.n_heads;
  const YarnRope::Angles angles = model.rope().angles(pos);  // validates pos

  std::vector<float> q_lora(static_cast<size_t>(rank));  // [R]
  // wq_a [R, D] · h [D] -> [R]
  matvec(layer.wq_a.type, layer.wq_a.data, hidden, q_lora.data(), rank, c.hidden_dim, pool);
  rms_norm(q_lora.data(), layer.q_norm.data(), q_lora.data(), rank, c.rms_eps);

  out.n_heads = heads;
  out.q.resize(static_cast<size_t>(heads * kKeyDim));  // [H, 128]
  out.weights.resize(static_cast<size_t>(heads));      // [H]
  // wq_b [H·128, R] · q_lora [R] -> [H·128]
  matvec(layer.wq_b.type, layer.wq_b.data, q_lora.data(), out.q.data(), heads * kKeyDim, rank, pool);
  for (int64_t h = 0; h < heads; ++h) project_head(model.rope(), angles, out.q.data() + h * kKeyDim);

  // weights_proj [H, D] · h [D] -> [H]; 128^-0.5 is the usual 1/sqrt(head_dim) of a dot-product
  // score and H^-0.5 keeps the head sum O(1) as H grows (both from the reference formula).
  matvec(layer.weights_proj.type, layer.weights_proj.data, hidden, out.weights.data(), heads,
         c.hidden_dim, pool);
  const float weight_scale = static_cast<float>(1.0 / std::sqrt(static_cast<double>(kKeyDim)) /
                                                std::sqrt(static_cast<double>(heads)));
  for (float& w : out.weights) w *= weight_scale;
}

IndexerQuery compute_query(const IndexerModel& model, const IndexerLayer& layer,
                           const float* hidden, int64_t pos, ThreadPool* pool) {
  IndexerQuery out;
  compute_query(model, layer, hidden, pos, out, pool);
  return out;
}

CompressedKey compute_key_from_mean(const IndexerModel& model, const IndexerLayer& layer,
                                    const float* mean_hidden, int64_t first_pos, ThreadPool* pool) {
  if (!layer.wk)
    fail("indexer layer {} has no key tower (key_source '{}')", layer.layer_id,
         model.config().key_source);
  const YarnRope::Angles angles = model.rope().angles(first_pos);
  float k[kKeyDim];  // [128]
  // wk [128, D] · mean_hidden [D] -> [128]
  matvec(layer.wk->type, layer.wk->data, mean_hidden, k, kKeyDim, model.config().hidden_dim, pool);
  project_head(model.rope(), angles, k);
  return compress_key(k);
}

CompressedKey compute_key(const IndexerModel& model, const IndexerLayer& layer,
                          const float* hidden_rows, int64_t n_tokens, int64_t first_pos,
                          ThreadPool* pool) {
  if (n_tokens < 1) fail("compute_key: a chunk needs at least one token, got {}", n_tokens);
  const int64_t dim = model.config().hidden_dim;
  // Sum in double so the mean does not depend on the order tokens arrive in.
  std::vector<double> sum(static_cast<size_t>(dim), 0.0);  // [D]
  for (int64_t t = 0; t < n_tokens; ++t)
    for (int64_t i = 0; i < dim; ++i) sum[i] += hidden_rows[t * dim + i];
  std::vector<float> mean(static_cast<size_t>(dim));  // [D]
  for (int64_t i = 0; i < dim; ++i) mean[i] = static_cast<float>(sum[i] / static_cast<double>(n_tokens));
  return compute_key_from_mean(model, layer, mean.data(), first_pos, pool);
}

std::vector<std::vector<float>> score_layers(const IndexerModel& model,
                                             const std::vector<LayerInputs>& inputs,
                                             int64_t n_keys, int64_t pos, ThreadPool* pool) {
  if (n_keys < 0) fail("score_layers: negative key count {}", n_keys);
  std::vector<std::vector<float>> logits;  // [layers, n_keys]
  IndexerQuery query;
  for (const LayerInputs& in : inputs) {
    const IndexerLayer& layer = model.layer(in.layer_id);
    compute_query(model, layer, in.hidden, pos, query, pool);
    logits.emplace_back(static_cast<size_t>(n_keys));
    score_logits(query, in.keys, n_keys, logits.back().data(), pool);
  }
  return logits;
}

}  // namespace flashmem
