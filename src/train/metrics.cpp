#include "train/metrics.h"

#include <algorithm>
#include <cmath>
#include <numeric>
#include <random>

#include <fmt/ranges.h>

#include "indexer/towers.h"
#include "tensor/kernels.h"
#include "util/error.h"

namespace flashmem {
namespace {

void add(EvalResult& into, const EvalResult& r) {
  for (size_t l = 0; l < into.layer.size(); ++l) {
    into.layer[l].tp += r.layer[l].tp;
    into.layer[l].fp += r.layer[l].fp;
    into.layer[l].fn += r.layer[l].fn;
    into.layer_hits_at_k[l] += r.layer_hits_at_k[l];
  }
  into.ensemble.tp += r.ensemble.tp;
  into.ensemble.fp += r.ensemble.fp;
  into.ensemble.fn += r.ensemble.fn;
  into.ensemble_hits_at_k += r.ensemble_hits_at_k;
  into.samples += r.samples;
  into.candidates += r.candidates;
  into.kept += r.kept;
  into.positives += r.positives;
  into.hits_lsa += r.hits_lsa;
  into.hits_recency += r.hits_recency;
  into.hits_random += r.hits_random;
  into.hits_oracle += r.hits_oracle;
  into.needs += r.needs;
  into.need_lsa += r.need_lsa;
  into.need_recency += r.need_recency;
  into.need_random += r.need_random;
  into.need_oracle += r.need_oracle;
  into.budget_slots += r.budget_slots;
}

EvalResult empty_result(size_t n_layers, const std::vector<int32_t>& layers) {
  EvalResult r;
  r.layers = layers;
  r.layer.assign(n_layers, {});
  r.layer_hits_at_k.assign(n_layers, 0);
  return r;
}

// Σ need[i] over the `keep` best candidates by `score` (ties: newer chunk first, as recency).
int64_t kept_need(const std::vector<float>& score, const std::vector<int32_t>& need, int64_t keep,
                  std::vector<int32_t>& order) {
  order.resize(score.size());
  std::iota(order.begin(), order.end(), 0);
  keep = std::min<int64_t>(keep, static_cast<int64_t>(order.size()));
  std::partial_sort(order.begin(), order.begin() + keep, order.end(), [&](int32_t a, int32_t b) {
    return score[a] != score[b] ? score[a] > score[b] : a > b;
  });
  int64_t sum = 0;
  for (int64_t i = 0; i < keep; ++i) sum += need[static_cast<size_t>(order[i])];
  return sum;
}

void evaluate_document(const IndexerModel& indexer, const DumpDocument& doc, size_t doc_index,
                       const EvalOptions& o, EvalResult& r) {
  const IndexerConfig& c = indexer.config();
  const int64_t D = c.hidden_dim, ct = c.chunk_tokens, C = doc.meta.n_chunks();
  const size_t L = c.layers.size();
  // Keys of every complete chunk per layer, as the runtime computes them.
  std::vector<std::vector<uint8_t>> keys(L, std::vector<uint8_t>(static_cast<size_t>(C) * kCompressedKeyBytes));  // [L][C, 132]
  std::vector<std::vector<float>> hidden(L, std::vector<float>(static_cast<size_t>(D)));  // [L][D]
  std::vector<float> mean(static_cast<size_t>(D));  // [D]
  for (size_t l = 0; l < L; ++l) {
    const IndexerLayer& layer = indexer.layer(c.layers[l]);
    for (int64_t ch = 0; ch < C; ++ch) {
      f16_to_f32_row(doc.key_input_row(l, ch), mean.data(), D);
      const CompressedKey key = compute_key_from_mean(indexer, layer, mean.data(), ch * ct, nullptr);
      std::copy(key.begin(), key.end(), keys[l].begin() + ch * kCompressedKeyBytes);
    }
  }
  std::vector<int32_t> positives, counts, order, is_pos, need;  // is_pos / need: [candidates]
  std::vector<float> ens, sub, rnd, need_score;
  std::mt19937_64 rng(o.seed * 0x9E3779B97F4A7C15ull + doc_index);
  for (int64_t row = 0; row < doc.n_rows(); row += o.stride) {
    const int64_t pos = doc.positions[static_cast<size_t>(row)];
    const ChunkRange range = candidate_range(doc.meta, pos, o.targets);
    const int32_t n = range.size();
    if (n == 0) continue;
    sample_positives(doc, row, o.targets, positives, &counts);
    if (positives.empty()) continue;
    std::vector<LayerInputs> inputs;
    for (size_t l = 0; l < L; ++l) {
      f16_to_f32_row(doc.hidden_row(l, row), hidden[l].data(), D);
      inputs.push_back({c.layers[l], hidden[l].data(), keys[l].data()});
    }
    const auto logits = score_layers(indexer, inputs, range.hi, pos, nullptr);  // [L][hi]
    is_pos.assign(static_cast<size_t>(n), 0);
    need.assign(static_cast<size_t>(n), 0);
    for (size_t i = 0; i < positives.size(); ++i) {
      is_pos[static_cast<size_t>(positives[i] - range.lo)] = 1;
      need[static_cast<size_t>(positives[i] - range.lo)] = counts[i];
    }
    need_score.assign(need.begin(), need.end());
    const auto n_pos = static_cast<int64_t>(positives.size());
    const int64_t k = std::min<int64_t>(o.k, n);
    ++r.samples;
    r.candidates += n;
    r.positives += n_pos;
    for (size_t l = 0; l < L; ++l) {
      sub.assign(logits[l].begin() + range.lo, logits[l].begin() + range.hi);
      for (int32_t i = 0; i < n; ++i) {
        const bool sel = sigmoid(sub[static_cast<size_t>(i)]) > kSelectThreshold;
        r.layer[l].tp += sel && is_pos[static_cast<size_t>(i)];
        r.layer[l].fp += sel && !is_pos[static_cast<size_t>(i)];
        r.layer[l].fn += !sel && is_pos[static_cast<size_t>(i)];
      }
      r.layer_hits_at_k[l] += kept_need(sub, is_pos, k, order);
    }
    std::vector<std::span<const float>> views;
    for (size_t l = 0; l < L; ++l) views.emplace_back(logits[l].data() + range.lo, static_cast<size_t>(n));
    ens.resize(static_cast<size_t>(n));
    ensemble_scores(views, o.ensemble, ens.data(), n);
    for (int32_t i = 0; i < n; ++i) {
      const bool sel = ens[static_cast<size_t>(i)] > kSelectThreshold;
      r.kept += sel;
      r.ensemble.tp += sel && is_pos[static_cast<size_t>(i)];
      r.ensemble.fp += sel && !is_pos[static_cast<size_t>(i)];
      r.ensemble.fn += !sel && is_pos[static_cast<size_t>(i)];
    }
    r.ensemble_hits_at_k += kept_need(ens, is_pos, k, order);
    // Same budget for the three selections.
    const int64_t history_chunks = (pos + 1) / ct;
    const int64_t kb = std::min<int64_t>(n, static_cast<int64_t>(std::ceil(o.budget * static_cast<double>(history_chunks))));
    r.budget_slots += kb;
    for (int32_t c : counts) r.needs += c;
    rnd.resize(static_cast<size_t>(n));
    std::uniform_real_distribution<float> uniform(0.0f, 1.0f);
    for (float& v : rnd) v = uniform(rng);
    r.hits_lsa += kept_need(ens, is_pos, kb, order);
    r.need_lsa += kept_need(ens, need, kb, order);
    r.hits_random += kept_need(rnd, is_pos, kb, order);
    r.need_random += kept_need(rnd, need, kb, order);
    r.hits_oracle += std::min<int64_t>(kb, n_pos);
    r.need_oracle += kept_need(need_score, need, kb, order);
    for (int64_t i = n - kb; i < n; ++i) {
      r.hits_recency += is_pos[static_cast<size_t>(i)];
      r.need_recency += need[static_cast<size_t>(i)];
    }
  }
}

}  // namespace

void check_dumps_match(const std::vector<DumpDocument>& docs, const std::vector<int32_t>& layers,
                       int64_t hidden_dim, int64_t chunk_tokens) {
  for (const DumpDocument& d : docs) {
    if (d.meta.layers != layers)
      fail("dump '{}' has target layers [{}], the indexer [{}]", d.meta.document_id, fmt::join(d.meta.layers, ","),
           fmt::join(layers, ","));
    if (d.meta.hidden_dim != hidden_dim)
      fail("dump '{}' has hidden_dim {}, the indexer {}", d.meta.document_id, d.meta.hidden_dim, hidden_dim);
    if (d.meta.chunk_tokens != chunk_tokens)
      fail("dump '{}' has chunk_tokens {}, the indexer {}", d.meta.document_id, d.meta.chunk_tokens, chunk_tokens);
  }
}

EvalResult evaluate_indexer(const IndexerModel& indexer, const std::vector<DumpDocument>& docs,
                            const EvalOptions& o, ThreadPool* pool) {
  validate_target_options(o.targets);
  if (!(o.budget > 0.0 && o.budget <= 1.0)) fail("--budget must be in (0, 1], got {}", o.budget);
  if (o.k < 1) fail("--k must be >= 1, got {}", o.k);
  if (o.stride < 1) fail("--stride must be >= 1, got {}", o.stride);
  const IndexerConfig& c = indexer.config();
  check_dumps_match(docs, c.layers, c.hidden_dim, c.chunk_tokens);
  const size_t L = c.layers.size();
  const int parts = pool != nullptr ? pool->size() : 1;
  std::vector<EvalResult> partial(static_cast<size_t>(parts), empty_result(L, c.layers));
  auto work = [&](int part) {
    for (size_t d = static_cast<size_t>(part); d < docs.size(); d += static_cast<size_t>(parts))
      evaluate_document(indexer, docs[d], d, o, partial[static_cast<size_t>(part)]);
  };
  if (pool != nullptr) pool->run(work); else work(0);
  EvalResult total = empty_result(L, c.layers);
  for (const EvalResult& r : partial) add(total, r);  // integer sums: order does not matter
  return total;
}

}  // namespace flashmem
