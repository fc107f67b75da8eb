// `flashmem train-lm --out MODEL.gguf [...]`: trains a small Llama model from scratch on
// generated retrieval tasks (src/lm/), with checkpoints (--checkpoint, --resume).
#include <fmt/format.h>

#include "commands.h"
#include "common.h"
#include "lm/trainer.h"
#include "util/dir_lock.h"
#include "util/error.h"

namespace flashmem::cli {
namespace {

struct TrainLmArgs {
  lm::TrainOptions o;
  std::string out_type = "f32";
  uint64_t seed = 1;
  std::vector<std::string> families = {"niah_multikey"};
  std::vector<std::string> eval_families = {"niah_single", "niah_multikey"};
};

void run_train_lm(TrainLmArgs& a) {
  if (a.seed >= (uint64_t{1} << 63)) fail("--seed must be below 2^63");
  a.o.seed = a.seed;
  if (a.out_type == "f32") a.o.out_type = DType::F32;
  else if (a.out_type == "f16") a.o.out_type = DType::F16;
  else fail("--out-type must be f32 or f16, not '{}'", a.out_type);
  if (a.o.out.empty()) fail("train-lm: --out MODEL.gguf is required");
  a.o.data.families = lm::parse_family_mix(a.families);
  a.o.eval_families.clear();
  for (const std::string& f : a.eval_families) a.o.eval_families.push_back(data::parse_family(f));
  // One writer of the model and of its checkpoint at a time (the trainer's default checkpoint).
  const DirLock out_lock = DirLock::lock_file(a.o.out);
  const DirLock checkpoint_lock = DirLock::lock_file(a.o.checkpoint.empty() ? a.o.out + ".ckpt" : a.o.checkpoint);
  lm::train_lm(a.o);
}

const CommandRegistration kTrainLm("train-lm", [](CLI::App& app) {
  auto a = std::make_shared<TrainLmArgs>();
  lm::TrainOptions& o = a->o;
  auto* cmd = app.add_subcommand("train-lm", "Train a small Llama model on generated retrieval tasks");
  cmd->add_option("--out", o.out, "output GGUF model (re-written at every checkpoint)")->required();
  cmd->add_option("--checkpoint", o.checkpoint, "checkpoint file (default: OUT.ckpt)");
  cmd->add_flag("--resume", o.resume, "continue from the checkpoint");
  cmd->add_option("--steps", o.optimizer.schedule.total_steps, "optimizer steps")->capture_default_str();
  cmd->add_option("--dim", o.model.dim, "model width")->capture_default_str();
  cmd->add_option("--layers", o.model.n_layers, "transformer blocks")->capture_default_str();
  cmd->add_option("--heads", o.model.n_heads, "attention heads")->capture_default_str();
  cmd->add_option("--kv-heads", o.model.n_kv_heads, "key/value heads (GQA)")->capture_default_str();
  cmd->add_option("--ff", o.model.ff_dim, "SwiGLU hidden width")->capture_default_str();
  cmd->add_option("--context", o.model.context_length, "context length written to the GGUF")
      ->capture_default_str();
  cmd->add_option("--rope-base", o.model.rope_base, "RoPE frequency base")->capture_default_str();
  cmd->add_flag("--tie-embeddings", o.model.tied_embeddings,
                "output head = token embedding (no output.weight in the GGUF)");
  cmd->add_option("--lr", o.optimizer.schedule.peak_lr, "peak learning rate")->capture_default_str();
  cmd->add_option("--min-lr-ratio", o.optimizer.schedule.min_lr_ratio, "final lr / peak lr")->capture_default_str();
  cmd->add_option("--warmup", o.optimizer.schedule.warmup_steps, "linear warm-up steps")->capture_default_str();
  cmd->add_option("--weight-decay", o.optimizer.adamw.weight_decay, "AdamW decay of matrices")->capture_default_str();
  cmd->add_option("--clip", o.optimizer.adamw.clip_norm, "gradient norm clip (0 = off)")->capture_default_str();
  cmd->add_option("--batch-tokens", o.data.batch_tokens, "tokens per step")->capture_default_str();
  cmd->add_option("--min-len", o.data.min_length, "shortest training sequence")->capture_default_str();
  cmd->add_option("--max-len", o.data.max_length, "longest training sequence")->capture_default_str();
  cmd->add_option("--ramp-steps", o.data.ramp_steps, "steps of the short-to-long length ramp")
      ->capture_default_str();
  cmd->add_option("--needle-ramp-steps", o.data.needle_ramp_steps,
                  "steps over which the needle count grows from 1 to the density target")
      ->capture_default_str();
  cmd->add_option("--needle-every", o.data.needle_every, "tokens per needle (density)")->capture_default_str();
  cmd->add_option("--query-every", o.data.query_every, "tokens per answered question")->capture_default_str();
  cmd->add_option("--word-values", o.data.word_values, "fraction of word values")->capture_default_str();
  cmd->add_option("--uuid-values", o.data.uuid_values, "fraction of uuid-like values")->capture_default_str();
  cmd->add_option("--repeat-fraction", o.data.repeat_fraction,
                  "fraction of random-token repeat sequences (induction warm-up)")->capture_default_str();
  cmd->add_option("--repeat-steps", o.data.repeat_steps,
                  "steps over which the repeat fraction falls to 0 (0 = constant)")->capture_default_str();
  cmd->add_option("--families", a->families,
                  "training task mix FAMILY[:WEIGHT],... (niah_single, niah_multikey, niah_multivalue, "
                  "niah_multiquery, vt)")
      ->delimiter(',')->capture_default_str();
  cmd->add_option("--word-filler", o.data.word_filler, "fraction of random-word filler")->capture_default_str();
  cmd->add_option("--lm-weight", o.data.lm_weight, "loss weight of non-answer tokens (0 = answers only)")
      ->capture_default_str();
  cmd->add_option("--init-std", o.init_std, "initial weight std (0 = 1/sqrt(fan-in))")->capture_default_str();
  cmd->add_flag("--init-induction", o.init_induction,
               "start from a working induction circuit (needs --tie-embeddings, 2+ layers)");
  cmd->add_option("--seed", a->seed, "initialisation and data seed")->capture_default_str();
  add_threads_option(cmd, o.threads);
  cmd->add_option("--checkpoint-every", o.checkpoint_every, "steps between checkpoints")->capture_default_str();
  cmd->add_option("--eval-every", o.eval_every, "steps between retrieval evaluations (0 = end only)")
      ->capture_default_str();
  cmd->add_option("--eval-samples", o.eval_samples, "samples per family and length")->capture_default_str();
  cmd->add_option("--eval-lengths", o.eval_lengths, "evaluation lengths")->delimiter(',')->capture_default_str();
  cmd->add_option("--eval-families", a->eval_families, "families of the periodic evaluation")
      ->delimiter(',')->capture_default_str();
  cmd->add_option("--log-every", o.log_every, "steps between log lines")->capture_default_str();
  cmd->add_option("--out-type", a->out_type, "weight type of the GGUF: f32 | f16")->capture_default_str();
  cmd->add_option("--max-seconds", o.max_seconds, "stop (checkpointed) after this wall time")
      ->capture_default_str();
  cmd->callback([a] { run_train_lm(*a); });
});

}  // namespace
}  // namespace flashmem::cli
