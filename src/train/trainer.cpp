#include "train/trainer.h"

#include <algorithm>
#include <cmath>
#include <random>

#include "optim/adamw.h"
#include "tensor/kernels.h"
#include "train/samples.h"
#include "train/tower_grad.h"
#include "util/error.h"
#include "util/thread_pool.h"
#include "util/timer.h"

namespace flashmem {
namespace {

// Shards per batch: fixed (not the thread count) so that results do not depend on -t; 16 keeps
// both cores busy with room for uneven samples, and costs 16 gradient buffers.
constexpr int kShards = 16;

struct SampleRef {
  int32_t doc, row;
};

// The indexer's AdamW: the usual Adam constants (beta2 0.999, eps 1e-8); REFERENCE.md's recipe
// names AdamW at lr ~1e-4 and nothing else, so the rest is TrainOptions (lr, decay, clip).
AdamWOptions indexer_adamw(const TrainOptions& o) {
  return {.beta1 = 0.9, .beta2 = 0.999, .eps = 1e-8, .weight_decay = o.weight_decay, .clip_norm = o.clip};
}

// Warm-up is a fraction of the run (at least one step), then cosine to lr · min_lr.
LrSchedule indexer_schedule(const TrainOptions& o, int64_t total_steps) {
  const auto warm = std::max<int64_t>(1, static_cast<int64_t>(o.warmup * static_cast<double>(total_steps)));
  return {.peak_lr = o.lr, .min_lr_ratio = o.min_lr, .warmup_steps = warm, .total_steps = total_steps};
}

void validate(const TrainOptions& o) {
  if (o.out.empty()) fail("--out is required");
  if (o.n_heads < 1 || o.n_heads > 4096) fail("--heads must be in [1, 4096], got {}", o.n_heads);
  if (o.q_lora_rank < 0) fail("--rank must be >= 0, got {}", o.q_lora_rank);
  if (!(o.neg_ratio >= 0.0 && o.neg_ratio <= 1000.0)) fail("--neg-ratio must be in [0, 1000], got {}", o.neg_ratio);
  if (!(o.trivial_fraction > 0.0 && o.trivial_fraction <= 1.0)) fail("--trivial-fraction must be in (0, 1]");
  if (!(o.trivial_weight >= 0.0 && o.trivial_weight <= 1.0)) fail("--trivial-weight must be in [0, 1]");
  if (o.stride < 1) fail("--stride must be >= 1");
  if (o.batch < 1 || o.batch > 1 << 20) fail("--batch must be in [1, 2^20]");
  if (!(o.epochs > 0.0 && o.epochs <= 1e6)) fail("--epochs must be in (0, 1e6]");
  if (o.max_samples < 0) fail("--samples must be >= 0");
  if (!(o.lr > 0.0 && o.lr < 1.0)) fail("--lr must be in (0, 1)");
  if (!(o.weight_decay >= 0.0 && o.weight_decay < 1.0)) fail("--weight-decay must be in [0, 1)");
  if (!(o.warmup >= 0.0 && o.warmup < 1.0)) fail("--warmup must be in [0, 1)");
  if (!(o.min_lr >= 0.0 && o.min_lr <= 1.0)) fail("--min-lr must be in [0, 1]");
  if (!(o.clip > 0.0)) fail("--clip must be > 0");
  if (o.eval_every < 0) fail("--eval-every must be >= 0");
  if (o.patience < 1) fail("--patience must be >= 1");
  if (!(o.val_fraction > 0.0 && o.val_fraction < 1.0)) fail("--val-fraction must be in (0, 1)");
}

// Fills `x` for sample `ref`: hidden rows, positives and neg_ratio·P sampled negatives.
bool build_sample(const DumpDocument& doc, const std::vector<uint8_t>& trivial, int64_t row,
                  const TrainOptions& o, std::mt19937_64& rng, SampleInput& x,
                  std::vector<int32_t>& positives, std::vector<int32_t>& pool, std::vector<int32_t>& counts) {
  const int64_t D = doc.meta.hidden_dim, ct = doc.meta.chunk_tokens;
  const size_t L = doc.meta.layers.size();
  sample_positives(doc, row, o.eval.targets, positives, &counts);
  if (positives.empty()) return false;
  double mean_count = 0;
  for (int32_t c : counts) mean_count += c;
  mean_count /= static_cast<double>(counts.size());
  const int64_t pos = doc.positions[static_cast<size_t>(row)];
  const ChunkRange range = candidate_range(doc.meta, pos, o.eval.targets);
  pool.clear();
  for (int32_t c = range.lo, p = 0; c < range.hi; ++c) {
    while (p < static_cast<int32_t>(positives.size()) && positives[static_cast<size_t>(p)] < c) ++p;
    if (p < static_cast<int32_t>(positives.size()) && positives[static_cast<size_t>(p)] == c) continue;
    pool.push_back(c);
  }
  const auto n_neg = std::min<int64_t>(static_cast<int64_t>(pool.size()),
                                       static_cast<int64_t>(std::llround(o.neg_ratio * static_cast<double>(positives.size()))));
  // Partial Fisher-Yates: the first n_neg of `pool` become a uniform sample without replacement.
  for (int64_t i = 0; i < n_neg; ++i) {
    std::uniform_int_distribution<int64_t> pick(i, static_cast<int64_t>(pool.size()) - 1);
    std::swap(pool[static_cast<size_t>(i)], pool[static_cast<size_t>(pick(rng))]);
  }
  const int64_t C = static_cast<int64_t>(positives.size()) + n_neg;
  x.pos = pos;
  x.n_chunks = C;
  x.hidden.resize(L * D);
  x.key_inputs.resize(L * C * D);
  x.first_pos.resize(C);
  x.labels.resize(C);
  x.weights.resize(C);
  for (size_t l = 0; l < L; ++l) f16_to_f32_row(doc.hidden_row(l, row), x.hidden.data() + l * D, D);
  for (int64_t i = 0; i < C; ++i) {
    const bool is_pos = i < static_cast<int64_t>(positives.size());
    const int32_t c = is_pos ? positives[static_cast<size_t>(i)] : pool[static_cast<size_t>(i - static_cast<int64_t>(positives.size()))];
    x.first_pos[i] = static_cast<int32_t>(c * ct);
    x.labels[i] = is_pos ? 1.0f : 0.0f;
    x.weights[i] = trivial[static_cast<size_t>(c)] ? static_cast<float>(o.trivial_weight) : 1.0f;
    if (is_pos && o.weight_by_need) x.weights[i] *= static_cast<float>(counts[static_cast<size_t>(i)] / mean_count);
    for (size_t l = 0; l < L; ++l) f16_to_f32_row(doc.key_input_row(l, c), x.key_inputs.data() + (l * C + i) * D, D);
  }
  return true;
}

}  // namespace

TrainSummary train_indexer(const std::vector<DumpDocument>& train, const std::vector<DumpDocument>& val,
                           const TrainOptions& o) {
  validate(o);
  validate_target_options(o.eval.targets);
  if (train.empty()) fail("no training documents");
  if (val.empty()) fail("no validation documents");
  const DumpMeta& m0 = train.front().meta;
  check_dumps_match(train, m0.layers, m0.hidden_dim, m0.chunk_tokens);
  check_dumps_match(val, m0.layers, m0.hidden_dim, m0.chunk_tokens);

  // Indexer shape: D from the dumps; R defaults to D clipped to [32, 256] (the reference's
  // R/D = 1/2 at D = 4096; a tiny backbone gets at least 32 so the query tower is not starved,
  // a large one at most 256 so that a 1M-sample run stays in minutes on 2 cores).
  IndexerConfig config;
  config.layers = m0.layers;
  config.hidden_dim = m0.hidden_dim;
  config.q_lora_rank = o.q_lora_rank > 0 ? o.q_lora_rank : std::clamp<int64_t>(m0.hidden_dim, 32, 256);
  config.n_heads = o.n_heads;
  config.chunk_tokens = m0.chunk_tokens;
  config.key_source = std::string(kKeySourceHiddenMean);
  validate_indexer_config(config);
  RandomIndexerSpec spec;
  spec.layers = config.layers;
  spec.hidden_dim = config.hidden_dim;
  spec.q_lora_rank = config.q_lora_rank;
  spec.n_heads = config.n_heads;
  IndexerWeights init = random_indexer_weights(spec, o.seed);
  init.config = config;
  std::vector<float> params = params_from_weights(init);
  const TowerLayout layout = tower_layout(config);
  for (int64_t l = 0; l < layout.n_layers; ++l)  // RMSNorm gain starts at 1 (identity)
    std::fill_n(params.begin() + l * layout.layer_size + layout.g, layout.R, 1.0f);
  std::vector<uint8_t> decay(params.size(), 1);  // no weight decay on the norm gain
  for (int64_t l = 0; l < layout.n_layers; ++l)
    std::fill_n(decay.begin() + l * layout.layer_size + layout.g, layout.R, 0);
  const YarnRope rope(config.rope);

  // Samples: every stride-th labeled row with at least one positive.
  std::vector<std::vector<uint8_t>> trivial;
  std::vector<SampleRef> samples;
  std::vector<int32_t> positives, negatives;
  for (size_t d = 0; d < train.size(); ++d) {
    trivial.push_back(trivial_chunks(train[d], o.trivial_fraction));
    for (int64_t r = 0; r < train[d].n_rows(); r += o.stride) {
      sample_positives(train[d], r, o.eval.targets, positives);
      if (!positives.empty()) samples.push_back({static_cast<int32_t>(d), static_cast<int32_t>(r)});
    }
  }
  if (samples.empty()) fail("the training dumps hold no sample with a positive chunk outside the sink and tail");

  TrainSummary summary;
  summary.train_docs = static_cast<int64_t>(train.size());
  summary.val_docs = static_cast<int64_t>(val.size());
  summary.samples_available = static_cast<int64_t>(samples.size());
  const int64_t total_samples = o.max_samples > 0 ? o.max_samples
      : static_cast<int64_t>(std::ceil(o.epochs * static_cast<double>(samples.size())));
  const int64_t total_steps = std::max<int64_t>(1, (total_samples + o.batch - 1) / o.batch);
  const int64_t eval_every = o.eval_every > 0 ? o.eval_every : std::max<int64_t>(1, total_steps / 10);

  ThreadPool pool(o.n_threads > 0 ? o.n_threads : ThreadPool::default_threads());
  std::vector<std::vector<float>> shard_grad(kShards, std::vector<float>(params.size()));
  std::vector<double> shard_loss(kShards);
  std::vector<int64_t> shard_count(kShards);
  std::vector<float> grad(params.size());
  AdamW adam(indexer_adamw(o), std::move(decay));
  const LrSchedule schedule = indexer_schedule(o, total_steps);
  int64_t updates = 0;  // steps with at least one sample (Adam's bias correction counts these)
  std::mt19937_64 order_rng(o.seed);
  std::vector<SampleRef> order = samples;
  std::shuffle(order.begin(), order.end(), order_rng);
  size_t cursor = 0;

  auto evaluate = [&](const std::vector<float>& p) {
    const IndexerModel model = IndexerModel::from_bytes(indexer_to_bytes(weights_from_params(config, p, DType::F32)), "<training>");
    return evaluate_indexer(model, val, o.eval, &pool);
  };
  std::vector<float> best = params;
  summary.best_eval = evaluate(params);
  summary.best_val_recall = summary.best_eval.recall_lsa();
  // --out is written only with a validated state: trained (step > 0), evaluated, the best so
  // far, and better on validation than recency — what a run without any indexer keeps. Until
  // then the file a user already has there stays byte for byte as it was, so a run killed early
  // never leaves an untrained indexer that looks valid but is worse than no indexer at all.
  // Writes are atomic (write_indexer), so a kill mid-write leaves the old or the new file.
  auto beats_recency = [](const EvalResult& r) { return r.recall_lsa() > r.recall_recency(); };
  auto write_best = [&] {
    write_indexer(o.out, weights_from_params(config, best, o.weight_type));
    summary.written = true;
  };
  int64_t since_best = 0;
  double interval_loss = 0;
  int64_t interval_samples = 0;
  ProgressLine progress("train", total_samples, "samples", o.progress);
  const double t0 = now_seconds();
  std::vector<SampleRef> batch;
  for (int64_t step = 0; step < total_steps; ++step) {
    batch.clear();
    const int64_t want = std::min<int64_t>(o.batch, total_samples - summary.samples_seen);
    for (int64_t i = 0; i < want; ++i) {
      if (cursor == order.size()) {
        std::shuffle(order.begin(), order.end(), order_rng);
        cursor = 0;
      }
      batch.push_back(order[cursor++]);
    }
    pool.run([&](int part) {
      thread_local TowerScratch scratch;
      thread_local SampleInput x;
      thread_local std::vector<int32_t> pos_buf, neg_buf, count_buf;
      for (int shard = part; shard < kShards; shard += pool.size()) {
        std::vector<float>& g = shard_grad[static_cast<size_t>(shard)];
        std::fill(g.begin(), g.end(), 0.0f);
        shard_loss[static_cast<size_t>(shard)] = 0;
        shard_count[static_cast<size_t>(shard)] = 0;
        for (size_t i = static_cast<size_t>(shard); i < batch.size(); i += kShards) {
          // Negatives depend only on (seed, step, position in batch): reproducible.
          std::mt19937_64 rng(o.seed ^ (0x9E3779B97F4A7C15ull * static_cast<uint64_t>(step * o.batch + static_cast<int64_t>(i) + 1)));
          const SampleRef s = batch[i];
          if (!build_sample(train[static_cast<size_t>(s.doc)], trivial[static_cast<size_t>(s.doc)], s.row, o, rng, x, pos_buf, neg_buf, count_buf)) continue;
          shard_loss[static_cast<size_t>(shard)] += tower_loss_grad(layout, rope, config.rms_eps, params, x, o.loss, g.data(), scratch);
          ++shard_count[static_cast<size_t>(shard)];
        }
      }
    });
    std::fill(grad.begin(), grad.end(), 0.0f);
    int64_t count = 0;
    double loss = 0;
    for (int s = 0; s < kShards; ++s) {
      const std::vector<float>& g = shard_grad[static_cast<size_t>(s)];
      for (size_t i = 0; i < grad.size(); ++i) grad[i] += g[i];
      count += shard_count[static_cast<size_t>(s)];
      loss += shard_loss[static_cast<size_t>(s)];
    }
    if (count > 0) {
      for (float& x : grad) x /= static_cast<float>(count);
      adam.step(params, grad, lr_at(schedule, step), updates++);
    }
    summary.samples_seen += want;
    summary.steps = step + 1;
    interval_loss += loss;
    interval_samples += count;
    progress.update(summary.samples_seen, fmt::format("loss {:.4f} | val recall {:.3f}",
                                                      interval_samples > 0 ? interval_loss / interval_samples : 0.0,
                                                      summary.best_val_recall));
    if ((step + 1) % eval_every == 0 || step + 1 == total_steps) {
      summary.final_loss = interval_samples > 0 ? interval_loss / static_cast<double>(interval_samples) : 0.0;
      interval_loss = 0;
      interval_samples = 0;
      const EvalResult r = evaluate(params);
      if (r.recall_lsa() > summary.best_val_recall) {
        summary.best_val_recall = r.recall_lsa();
        summary.best_eval = r;
        summary.best_step = step + 1;
        best = params;
        if (beats_recency(r)) write_best();
        since_best = 0;
      } else if (++since_best >= o.patience) {
        summary.early_stopped = true;
        break;
      }
    }
  }
  summary.beats_recency = beats_recency(summary.best_eval);
  // A finished run delivers its best state even if it never beat recency (the caller warns):
  // it is the complete product of the run the user asked for, not a leftover of a killed one.
  if (!summary.written) write_best();
  summary.seconds = now_seconds() - t0;
  summary.samples_per_second = summary.seconds > 0 ? static_cast<double>(summary.samples_seen) / summary.seconds : 0.0;
  progress.finish(fmt::format("best val recall {:.3f} at step {}", summary.best_val_recall, summary.best_step));
  return summary;
}

}  // namespace flashmem
