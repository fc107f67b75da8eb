#include "runtime/policies/lsa_policy.h"

#include <algorithm>
#include <random>

#include "indexer/fp8.h"
#include "indexer/scoring.h"
#include "indexer/towers.h"
#include "util/error.h"

namespace flashmem {

LsaPolicy::LsaPolicy(std::unique_ptr<SelectionPolicy> chooser, const PolicyContext& ctx)
    : PagePolicy(std::move(chooser)),
      indexer_(ctx.options.indexer),
      dim_(ctx.model.dim),
      page_tokens_(ctx.options.page_tokens),
      page_score_(ctx.options.policy.lsa_page_score),
      pool_(ctx.options.pool) {
  if (!indexer_) fail("policy lsa needs an indexer (--indexer I.gguf)");
  const IndexerConfig& ic = indexer_->config();
  if (ic.hidden_dim != dim_)
    fail("indexer hidden_dim {} does not match the model's embedding width {}", ic.hidden_dim, dim_);
  for (int32_t id : ic.layers) {
    if (id < 0 || id >= ctx.model.n_layers)
      fail("indexer target layer {} does not exist in a {}-layer model", id, ctx.model.n_layers);
    if (!indexer_->layer(id).wk)
      fail("indexer layer {} has no key tower (wk); key_source '{}' needs backbone keys", id,
           ic.key_source);
    hidden_layers_.push_back(id);
  }
  chunk_tokens_ = ic.chunk_tokens;
  if (ctx.options.policy.lsa_fallback == LsaFallback::kOn)
    fallback_ = make_top_scored_policy("lsa-fallback", kLsaFallbackFraction);
  reset();
}

bool lsa_unsure(const SelectionInput& input) {
  const PageGeometry& g = input.geometry;
  if (g.n_middle_pages() == 0 || static_cast<int64_t>(input.page_scores.size()) != g.n_pages) return false;
  const auto first = input.page_scores.begin() + g.sink_pages;
  const auto [lo, hi] = std::minmax_element(first, input.page_scores.begin() + g.first_tail_page());
  return !(*hi > kSelectThreshold) || *hi - *lo < kLsaFlatSpread;
}

std::vector<int64_t> LsaPolicy::select(const SelectionInput& input) {
  std::vector<int64_t> chosen = PagePolicy::select(input);
  if (!fallback_ || !lsa_unsure(input)) return chosen;
  // The wider choice ranks by the same scores and ties, so it contains every page the threshold
  // kept; it counts only when it adds pages.
  std::vector<int64_t> wider = fallback_->select(input);
  if (wider.size() <= chosen.size()) return chosen;
  ++fallback_cycles_;
  return wider;
}

void LsaPolicy::reset() {
  const size_t n_target = hidden_layers_.size();
  chunk_sum_.assign(n_target, std::vector<float>(static_cast<size_t>(dim_), 0.0f));
  last_hidden_.assign(n_target, std::vector<float>(static_cast<size_t>(dim_), 0.0f));
  keys_.assign(n_target, {});
  last_pos_ = 0;
  fallback_cycles_ = 0;
  pending_.clear();
  pending_means_.clear();
}

void LsaPolicy::observe_hidden(int64_t layer, int64_t pos, const float* hidden) {
  const auto it = std::find(hidden_layers_.begin(), hidden_layers_.end(), layer);
  if (it == hidden_layers_.end()) return;
  const auto i = static_cast<size_t>(it - hidden_layers_.begin());
  std::copy(hidden, hidden + dim_, last_hidden_[i].begin());
  last_pos_ = pos;
  std::vector<float>& sum = chunk_sum_[i];
  for (int64_t d = 0; d < dim_; ++d) sum[static_cast<size_t>(d)] += hidden[d];
  if ((pos + 1) % chunk_tokens_ != 0) return;
  // The chunk is complete: its key (key tower on its mean hidden state, at its first position)
  // is computed with the batch's other keys at end_batch().
  for (float& x : sum) x /= static_cast<float>(chunk_tokens_);
  pending_.push_back({i, pos + 1 - chunk_tokens_});
  pending_means_.insert(pending_means_.end(), sum.begin(), sum.end());
  std::fill(sum.begin(), sum.end(), 0.0f);
}

void LsaPolicy::end_batch() { compute_pending_keys(); }

void LsaPolicy::compute_pending_keys() {
  const auto n = static_cast<int64_t>(pending_.size());
  if (n == 0) return;
  std::vector<CompressedKey> computed(static_cast<size_t>(n));  // [n] in pending_ order
  // One key per task, each by the single-threaded key tower on its own mean: the same bits on
  // any number of threads.
  auto work = [&](int64_t begin, int64_t end) {
    for (int64_t j = begin; j < end; ++j) {
      const PendingKey& p = pending_[static_cast<size_t>(j)];
      const auto layer = static_cast<int32_t>(hidden_layers_[p.target]);
      computed[static_cast<size_t>(j)] =
          compute_key_from_mean(*indexer_, indexer_->layer(layer),
                                pending_means_.data() + j * dim_, p.first_pos, nullptr);
    }
  };
  parallel_for(n == 1 ? nullptr : pool_, n, 1, work);
  // Chunks complete in position order within each target layer, so appending in pending order
  // keeps every layer's keys in chunk order.
  for (int64_t j = 0; j < n; ++j) {
    const CompressedKey& key = computed[static_cast<size_t>(j)];
    std::vector<uint8_t>& layer_keys = keys_[pending_[static_cast<size_t>(j)].target];
    layer_keys.insert(layer_keys.end(), key.begin(), key.end());
  }
  pending_.clear();
  pending_means_.clear();
}

std::vector<float> LsaPolicy::cycle_scores(const PageGeometry& g, int64_t cycle) {
  compute_pending_keys();  // normally done by end_batch(); a no-op then
  const int64_t n_pages = g.n_pages;
  const auto n_chunks = static_cast<int64_t>(keys_.empty() ? 0 : keys_[0].size() / kCompressedKeyBytes);
  std::vector<float> page_scores(static_cast<size_t>(n_pages), 0.0f);
  if (n_chunks == 0) return page_scores;
  std::vector<LayerInputs> inputs;
  for (size_t i = 0; i < hidden_layers_.size(); ++i)
    inputs.push_back({static_cast<int32_t>(hidden_layers_[i]), last_hidden_[i].data(), keys_[i].data()});
  const auto logits = score_layers(*indexer_, inputs, n_chunks, last_pos_, pool_);
  std::vector<std::span<const float>> views(logits.begin(), logits.end());
  std::vector<float> chunk_scores(static_cast<size_t>(n_chunks));  // [n_chunks]
  ensemble_scores(views, EnsembleMode::kMax, chunk_scores.data(), n_chunks);
  // Page score (DESIGN.md): its best chunk ("max"), or how many of its chunks pass the
  // threshold ("count", the reference's page-recall density). Both keep the same pages under
  // the threshold (a page passes iff one chunk does); they rank differently under a cap/top-k.
  const bool count = page_score_ == LsaPageScore::kCount;
  for (int64_t c = 0; c < n_chunks; ++c) {
    const int64_t page = c * chunk_tokens_ / page_tokens_;
    if (page >= n_pages) continue;
    float& score = page_scores[static_cast<size_t>(page)];
    const float chunk = chunk_scores[static_cast<size_t>(c)];
    score = count ? score + (chunk > kSelectThreshold ? 1.0f : 0.0f) : std::max(score, chunk);
  }
  return page_scores;
}

void LsaPolicy::fill_synthetic(int64_t n, uint64_t seed) {
  // Indexer keys of every complete chunk: random but valid compressed keys.
  const int64_t n_chunks = n / chunk_tokens_;
  std::mt19937_64 rng(seed);
  std::normal_distribution<float> normal(0.0f, 1.0f);
  std::vector<float> key(kKeyDim);  // [128]
  for (auto& layer_keys : keys_) {
    layer_keys.clear();
    for (int64_t c = 0; c < n_chunks; ++c) {
      for (float& x : key) x = normal(rng);
      const CompressedKey ck = compress_key(key.data());
      layer_keys.insert(layer_keys.end(), ck.begin(), ck.end());
    }
  }
  for (auto& h : last_hidden_)
    for (float& x : h) x = normal(rng);
  last_pos_ = n - 1;
}

// Saved chunk keys per target layer: 2^24 chunks (a 1G-token context at 64-token chunks).
constexpr uint64_t kMaxSavedChunks = uint64_t{1} << 24;

// The chunk keys are the one part of the state the pages cannot give back: they come from
// hidden states, which the KV does not keep.
void LsaPolicy::save_state(ByteWriter& out) const {
  if (!pending_.empty()) fail("internal: lsa state saved inside a batch");
  PagePolicy::save_state(out);
  out.put<int64_t>(last_pos_);
  out.put<int64_t>(fallback_cycles_);
  for (size_t i = 0; i < hidden_layers_.size(); ++i) {
    out.put_array(std::span<const float>(chunk_sum_[i]));
    out.put_array(std::span<const float>(last_hidden_[i]));
    out.put_array(std::span<const uint8_t>(keys_[i]));
  }
}

void LsaPolicy::load_state(ByteReader& in) {
  PagePolicy::load_state(in);
  last_pos_ = in.get<int64_t>("lsa last position");
  fallback_cycles_ = in.get<int64_t>("lsa fallback cycles");
  const auto dim = static_cast<uint64_t>(dim_);
  for (size_t i = 0; i < hidden_layers_.size(); ++i) {
    chunk_sum_[i] = in.get_array<float>("lsa open chunk sum", dim);
    last_hidden_[i] = in.get_array<float>("lsa last hidden state", dim);
    keys_[i] = in.get_array<uint8_t>("lsa chunk keys", kMaxSavedChunks * kCompressedKeyBytes);
    if (chunk_sum_[i].size() != dim || last_hidden_[i].size() != dim ||
        keys_[i].size() % kCompressedKeyBytes != 0 || keys_[i].size() != keys_[0].size())
      fail("the saved lsa state does not fit this indexer (width {}, {} target layers)", dim_,
           hidden_layers_.size());
  }
}

}  // namespace flashmem
