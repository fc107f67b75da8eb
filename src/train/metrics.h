// Evaluation of an indexer on dumps (`flashmem eval-indexer` and the trainer's validation),
// always through the inference code: keys from compute_key_from_mean (with its bf16 and fp8
// rounding), logits from score_layers, ensemble from ensemble_scores — the functions the runtime
// calls, so the numbers are those of `run --policy lsa`.
//
// Per sample (a labeled token at pos, every `stride`-th row): candidates and positives as in
// samples.h. Reported, micro-averaged over samples:
//   precision / recall / F1 of "score > 0.5" per layer and for the ensemble (max over layers);
//   recall@K: positives among the K best candidates (K = min(k, candidates));
//   kept_fraction: candidates with ensemble score > 0.5 / candidates (the budget 0.5 implies);
//   recall_at_budget: K_b = ceil(budget · complete chunks of the history) candidates may be kept
//     (capped at the candidate count), chosen by the ensemble score (lsa), newest first
//     (recency) or uniformly at random (random, seeded); recall = golden chunks of the τ decode
//     steps t .. t+τ−1 that are kept / golden chunks of those steps (each step's golden set
//     counted: a chunk 40 steps need weighs 40 times one step needs — the fraction of the golden
//     chunks each decode step needs that is resident, what LSA's accuracy depends on).
//     `oracle` = the best any selection of K_b chunks can do (the K_b most needed chunks).
//   union_recall_at_budget: the same counting each positive (union over the τ steps) once.
#pragma once
#include <cstdint>
#include <vector>

#include "indexer/indexer_model.h"
#include "indexer/scoring.h"
#include "train/dump_format.h"
#include "train/samples.h"
#include "util/thread_pool.h"

namespace flashmem {

struct EvalOptions {
  TargetOptions targets;
  double budget = 0.1;      // the paper's same-budget ablations use 10%
  int64_t k = 512;          // the reference's recall@K
  int64_t stride = 1;       // every stride-th labeled token is a sample
  uint64_t seed = 0;        // random baseline
  EnsembleMode ensemble = EnsembleMode::kMax;
};

struct Confusion {
  int64_t tp = 0, fp = 0, fn = 0;
  double precision() const { return tp + fp > 0 ? static_cast<double>(tp) / static_cast<double>(tp + fp) : 0.0; }
  double recall() const { return tp + fn > 0 ? static_cast<double>(tp) / static_cast<double>(tp + fn) : 0.0; }
  double f1() const {
    const double p = precision(), r = recall();
    return p + r > 0 ? 2 * p * r / (p + r) : 0.0;
  }
};

struct EvalResult {
  std::vector<int32_t> layers;
  std::vector<Confusion> layer;              // [layers]
  Confusion ensemble;
  std::vector<int64_t> layer_hits_at_k;      // [layers]
  int64_t ensemble_hits_at_k = 0;
  int64_t samples = 0, candidates = 0, kept = 0, positives = 0;
  int64_t hits_lsa = 0, hits_recency = 0, hits_random = 0, hits_oracle = 0;  // union, at the budget
  int64_t needs = 0;  // Σ over samples of Σ_positives count (per-step golden chunks, candidates)
  int64_t need_lsa = 0, need_recency = 0, need_random = 0, need_oracle = 0;  // of those, kept
  int64_t budget_slots = 0;                                 // Σ K_b over samples

  double frac(int64_t a, int64_t b) const { return b > 0 ? static_cast<double>(a) / static_cast<double>(b) : 0.0; }
  double kept_fraction() const { return frac(kept, candidates); }
  double recall_at_k(int64_t hits) const { return frac(hits, positives); }
  double recall_lsa() const { return frac(need_lsa, needs); }
  double recall_recency() const { return frac(need_recency, needs); }
  double recall_random() const { return frac(need_random, needs); }
  double recall_oracle() const { return frac(need_oracle, needs); }
};

// Throws Error if a dump does not match the indexer (layers, hidden_dim, chunk_tokens) or an
// option is out of range.
EvalResult evaluate_indexer(const IndexerModel& indexer, const std::vector<DumpDocument>& docs,
                            const EvalOptions& options, ThreadPool* pool);

// Checks that every dump can feed an indexer with these layers / width / chunk size.
void check_dumps_match(const std::vector<DumpDocument>& docs, const std::vector<int32_t>& layers,
                       int64_t hidden_dim, int64_t chunk_tokens);

}  // namespace flashmem
