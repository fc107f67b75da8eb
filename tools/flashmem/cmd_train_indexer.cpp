// `flashmem train-indexer` and `flashmem eval-indexer`: dumps -> indexer, indexer + dumps ->
// metrics (src/train/trainer.h, src/train/metrics.h). Neither loads a backbone.
#include <fmt/format.h>

#include <nlohmann/json.hpp>

#include "commands.h"
#include "common.h"
#include "train/trainer.h"
#include "util/dir_lock.h"

namespace flashmem::cli {
namespace {

std::vector<DumpDocument> load_dumps(const std::vector<std::string>& dirs) {
  std::vector<DumpDocument> docs;
  for (const std::string& dir : dirs)
    for (const std::string& path : list_dumps(dir)) docs.push_back(read_dump(path));
  return docs;
}

void add_eval_options(CLI::App* cmd, EvalOptions& e) {
  cmd->add_option("--budget", e.budget, "resident budget F for recall_at_budget (fraction of history chunks)")->capture_default_str();
  cmd->add_option("--k", e.k, "K of recall@K")->capture_default_str();
  cmd->add_option("--label-interval", e.targets.label_interval, "positives: golden over the next N tokens (tau)")->capture_default_str();
  cmd->add_option("--sink-tokens", e.targets.sink_tokens, "always-resident first tokens, not candidates")->capture_default_str();
  cmd->add_option("--tail-tokens", e.targets.tail_tokens, "always-resident newest tokens, not candidates")->capture_default_str();
}

nlohmann::json eval_json(const EvalResult& r, double budget) {
  nlohmann::json layers = nlohmann::json::array();
  for (size_t l = 0; l < r.layers.size(); ++l)
    layers.push_back({{"layer", r.layers[l]}, {"precision", r.layer[l].precision()}, {"recall", r.layer[l].recall()},
                      {"f1", r.layer[l].f1()}, {"recall_at_k", r.recall_at_k(r.layer_hits_at_k[l])}});
  return {{"budget", budget},
          {"precision", r.ensemble.precision()},
          {"recall", r.ensemble.recall()},
          {"f1", r.ensemble.f1()},
          {"recall_at_k", r.recall_at_k(r.ensemble_hits_at_k)},
          {"kept_fraction", r.kept_fraction()},
          {"recall_at_budget", {{"lsa", r.recall_lsa()}, {"recency", r.recall_recency()}, {"random", r.recall_random()},
                                {"oracle", r.recall_oracle()}}},
          {"union_recall_at_budget", {{"lsa", r.frac(r.hits_lsa, r.positives)}, {"recency", r.frac(r.hits_recency, r.positives)},
                                      {"random", r.frac(r.hits_random, r.positives)}, {"oracle", r.frac(r.hits_oracle, r.positives)}}},
          {"samples", r.samples},
          {"positives_per_sample", r.frac(r.positives, r.samples)},
          {"candidates_per_sample", r.frac(r.candidates, r.samples)},
          {"layers", layers}};
}

void print_eval_table(const EvalResult& r, const EvalOptions& o) {
  fmt::print("{} samples, {:.1f} candidates and {:.1f} positives per sample\n", r.samples,
             r.frac(r.candidates, r.samples), r.frac(r.positives, r.samples));
  fmt::print("{:<10} {:>9} {:>7} {:>7} {:>10}\n", "layer", "precision", "recall", "f1", fmt::format("recall@{}", o.k));
  for (size_t l = 0; l < r.layers.size(); ++l)
    fmt::print("{:<10} {:>9.3f} {:>7.3f} {:>7.3f} {:>10.3f}\n", r.layers[l], r.layer[l].precision(), r.layer[l].recall(),
               r.layer[l].f1(), r.recall_at_k(r.layer_hits_at_k[l]));
  fmt::print("{:<10} {:>9.3f} {:>7.3f} {:>7.3f} {:>10.3f}\n", "ensemble", r.ensemble.precision(), r.ensemble.recall(),
             r.ensemble.f1(), r.recall_at_k(r.ensemble_hits_at_k));
  fmt::print("kept fraction at 0.5: {:.3f}\n", r.kept_fraction());
  fmt::print("recall at budget {:.2f} (per-step golden): lsa {:.3f} | recency {:.3f} | random {:.3f} | oracle {:.3f}\n",
             o.budget, r.recall_lsa(), r.recall_recency(), r.recall_random(), r.recall_oracle());
  fmt::print("recall at budget {:.2f} (union over tau):  lsa {:.3f} | recency {:.3f} | random {:.3f} | oracle {:.3f}\n",
             o.budget, r.frac(r.hits_lsa, r.positives), r.frac(r.hits_recency, r.positives),
             r.frac(r.hits_random, r.positives), r.frac(r.hits_oracle, r.positives));
}

struct TrainArgs {
  std::vector<std::string> data, val;
  std::string loss = "bce", type = "f32", positive_weight = "need";
  TrainOptions o;
  bool json = false;
};

void run_train(TrainArgs& a) {
  a.o.loss = parse_loss(a.loss);
  if (a.positive_weight != "need" && a.positive_weight != "uniform")
    fail("--positive-weight must be need or uniform, not '{}'", a.positive_weight);
  a.o.weight_by_need = a.positive_weight == "need";
  const auto t = dtype_from_name(a.type);
  if (!t || (*t != DType::F32 && *t != DType::F16 && *t != DType::BF16)) fail("--type must be f32, f16 or bf16");
  a.o.weight_type = *t;
  const DirLock lock = DirLock::lock_file(a.o.out);  // one writer of --out at a time
  std::vector<DumpDocument> train = load_dumps(a.data), val;
  if (!a.val.empty()) {
    val = load_dumps(a.val);
  } else {
    // Split by document: every document whose index hits the fraction goes to validation, spread
    // over the corpus (not the tail of it) and independent of the seed.
    if (!(a.o.val_fraction > 0.0 && a.o.val_fraction < 1.0)) fail("--val-fraction must be in (0, 1)");
    if (train.size() < 2) fail("need at least 2 documents to split off validation (or give --val)");
    const auto every = static_cast<size_t>(std::max(2.0, std::round(1.0 / a.o.val_fraction)));
    std::vector<DumpDocument> kept;
    for (size_t i = 0; i < train.size(); ++i) (i % every == every - 1 ? val : kept).push_back(std::move(train[i]));
    train = std::move(kept);
  }
  const TrainSummary s = train_indexer(train, val, a.o);
  fmt::print("trained on {} documents ({} samples available), validated on {}: {} steps, {} samples, {:.1f} s, "
             "{:.0f} samples/s{}\n",
             s.train_docs, s.samples_available, s.val_docs, s.steps, s.samples_seen, s.seconds, s.samples_per_second,
             s.early_stopped ? ", stopped early" : "");
  fmt::print("best validation recall at budget {:.2f}: {:.3f} (step {}); wrote {}\n", a.o.eval.budget,
             s.best_val_recall, s.best_step, a.o.out);
  print_eval_table(s.best_eval, a.o.eval);
  if (!s.beats_recency)
    fmt::print(stderr, "warning: the written indexer does not beat recency on validation (recall at budget "
                       "{:.3f} vs {:.3f}): policy recency keeps more of what is needed\n",
               s.best_eval.recall_lsa(), s.best_eval.recall_recency());
  if (a.json) {
    nlohmann::json j = {{"out", a.o.out}, {"loss", a.loss}, {"train_docs", s.train_docs}, {"val_docs", s.val_docs},
                        {"samples_available", s.samples_available}, {"steps", s.steps},
                        {"samples", s.samples_seen}, {"seconds", s.seconds},
                        {"samples_per_second", s.samples_per_second}, {"final_loss", s.final_loss},
                        {"best_step", s.best_step}, {"early_stopped", s.early_stopped},
                        {"beats_recency", s.beats_recency},
                        {"val", eval_json(s.best_eval, a.o.eval.budget)}};
    fmt::print("{}\n", j.dump());
  }
}

const CommandRegistration kTrain("train-indexer", [](CLI::App& app) {
  auto* cmd = app.add_subcommand("train-indexer", "Train a Memory Indexer from dumps (no backbone)");
  auto a = std::make_shared<TrainArgs>();
  TrainOptions& o = a->o;
  cmd->add_option("--data", a->data, "dump directories or files")->required();
  cmd->add_option("--val", a->val, "validation dumps (default: every 1/val-fraction-th training document)");
  cmd->add_option("--out", o.out, "output indexer .gguf (best validated state; an existing file is replaced only by one that beats recency, or at the end)")->required();
  cmd->add_option("--loss", a->loss, "bce | focal | bpr")->capture_default_str();
  cmd->add_option("--neg-ratio", o.neg_ratio, "negatives per positive")->capture_default_str();
  cmd->add_option("--trivial-weight", o.trivial_weight, "loss weight of trivial chunks (1 = off)")->capture_default_str();
  cmd->add_option("--trivial-fraction", o.trivial_fraction, "a chunk golden for more than this fraction of a document's tokens is trivial")->capture_default_str();
  cmd->add_option("--stride", o.stride, "one sample every N labeled tokens")->capture_default_str();
  cmd->add_option("--positive-weight", a->positive_weight, "need (by how many of the next tau steps need the chunk) | uniform")->capture_default_str();
  cmd->add_option("--heads", o.n_heads, "indexer heads H")->capture_default_str();
  cmd->add_option("--rank", o.q_lora_rank, "query low rank R (0 = clamp(D, 32, 256))")->capture_default_str();
  cmd->add_option("--batch", o.batch, "samples per step")->capture_default_str();
  cmd->add_option("--epochs", o.epochs, "passes over the samples")->capture_default_str();
  cmd->add_option("--samples", o.max_samples, "train on exactly N samples (overrides --epochs)")->capture_default_str();
  cmd->add_option("--lr", o.lr, "peak learning rate")->capture_default_str();
  cmd->add_option("--weight-decay", o.weight_decay, "AdamW decoupled weight decay")->capture_default_str();
  cmd->add_option("--warmup", o.warmup, "warm-up fraction of the steps")->capture_default_str();
  cmd->add_option("--clip", o.clip, "gradient norm clip")->capture_default_str();
  cmd->add_option("--eval-every", o.eval_every, "steps between validations (0 = 10 per run)")->capture_default_str();
  cmd->add_option("--patience", o.patience, "validations without improvement before stopping")->capture_default_str();
  cmd->add_option("--val-fraction", o.val_fraction, "held-out fraction of documents without --val")->capture_default_str();
  cmd->add_option("--val-stride", o.eval.stride, "validate on every N-th labeled token")->capture_default_str();
  cmd->add_option("--type", a->type, "weight type of the written indexer: f32 | f16 | bf16")->capture_default_str();
  cmd->add_option("--seed", o.seed, "seed (initialisation, order, negatives)")->capture_default_str();
  add_threads_option(cmd, o.n_threads);
  add_eval_options(cmd, o.eval);
  cmd->add_flag("--progress", o.progress, "print the progress line even when stderr is not a terminal");
  cmd->add_flag("--json", a->json, "print a JSON summary as the last line");
  o.eval.stride = 4;  // validation on every 4th token: neighbours share most positives
  cmd->callback([a] { run_train(*a); });
});

struct EvalArgs {
  std::string indexer;
  std::vector<std::string> data;
  std::string ensemble = "max";
  EvalOptions o;
  int threads = 0;
  bool json = false;
};

const CommandRegistration kEval("eval-indexer", [](CLI::App& app) {
  auto* cmd = app.add_subcommand("eval-indexer", "Evaluate an indexer on dumps: P/R/F1, recall@K, recall at a budget vs recency and random");
  auto a = std::make_shared<EvalArgs>();
  cmd->add_option("--indexer", a->indexer, "indexer .gguf")->required();
  cmd->add_option("--data", a->data, "dump directories or files")->required();
  cmd->add_option("--stride", a->o.stride, "one sample every N labeled tokens")->capture_default_str();
  cmd->add_option("--ensemble", a->ensemble, "max | mean over layers")->capture_default_str();
  cmd->add_option("--seed", a->o.seed, "seed of the random baseline")->capture_default_str();
  add_threads_option(cmd, a->threads);
  add_eval_options(cmd, a->o);
  cmd->add_flag("--json", a->json, "print a JSON summary as the last line");
  cmd->callback([a] {
    a->o.ensemble = parse_ensemble_mode(a->ensemble);
    const IndexerModel indexer = IndexerModel::load(a->indexer);
    const std::vector<DumpDocument> docs = load_dumps(a->data);
    ThreadPool pool(a->threads > 0 ? a->threads : ThreadPool::default_threads());
    const EvalResult r = evaluate_indexer(indexer, docs, a->o, &pool);
    print_eval_table(r, a->o);
    if (a->json) fmt::print("{}\n", eval_json(r, a->o.budget).dump());
  });
});

}  // namespace
}  // namespace flashmem::cli
