#include "lm/trainer.h"

#include <fmt/format.h>
#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <mutex>

#include "data/rng.h"
#include "data/word_vocab.h"
#include "lm/checkpoint.h"
#include "lm/induction_init.h"
#include "lm/export.h"
#include "lm/lm_forward.h"
#include "tokenizer/tokenizer.h"
#include "util/error.h"
#include "util/thread_pool.h"
#include "util/timer.h"

namespace flashmem::lm {

void validate_train_options(const TrainOptions& o) {
  validate_optimizer(o.optimizer);
  validate_data_options(o.data);
  if (o.out.empty()) fail("train-lm: --out MODEL.gguf is required");
  if (o.threads < 0 || o.threads > 1024) fail("--threads {} must be in [0, 1024]", o.threads);
  if (o.checkpoint_every < 1) fail("--checkpoint-every must be >= 1");
  if (o.eval_every < 0) fail("--eval-every must be >= 0");
  if (o.eval_samples < 1 || o.eval_samples > 100000) fail("--eval-samples must be in [1, 100000]");
  if (o.log_every < 1) fail("--log-every must be >= 1");
  if (o.eval_families.empty()) fail("--eval-families is empty");
  for (const data::TaskFamily f : o.eval_families)
    if (f == data::TaskFamily::kFwe) fail("--eval-families: fwe has no training form to score");
  for (const int64_t l : o.eval_lengths)
    if (l < 128 || l > o.model.context_length)
      fail("eval length {} must be in [128, context {}]", l, o.model.context_length);
  if (o.data.max_length > o.model.context_length)
    fail("--max-len {} exceeds the model context {}", o.data.max_length, o.model.context_length);
  if (o.out_type != DType::F32 && o.out_type != DType::F16) fail("--out-type must be f32 or f16");
  if (!(o.max_seconds >= 0)) fail("--max-seconds must be >= 0");
  if (!(o.init_std >= 0 && o.init_std < 1)) fail("--init-std {} must be in [0, 1)", o.init_std);
}

RecallAccuracy recall_accuracy(const LmConfig& c, const ParamLayout& layout, const std::vector<float>& params,
                       const Tokenizer& tokenizer, data::TaskFamily family, int64_t length,
                       int64_t samples, uint64_t seed, ThreadPool& pool) {
  const RopeTable rope = make_rope_table(c, length);
  std::vector<int> correct(static_cast<size_t>(samples), 0);
  std::vector<int64_t> tokens_right(static_cast<size_t>(samples), 0), tokens_all(tokens_right.size(), 0);
  pool.run([&](int part) {
    Activations acts;
    std::vector<float> logits;
    for (int64_t i = part; i < samples; i += pool.size()) {
      data::TaskSpec spec;
      spec.family = family;
      spec.length = length;
      spec.n_answered = 1;
      const Sequence s = sample_to_sequence(
          data::generate_task(spec, data::mix_seed(seed, static_cast<uint64_t>(i)), tokenizer), true);
      logits.resize(s.targets.size() * static_cast<size_t>(c.n_vocab));
      forward(c, layout, params.data(), rope, s.tokens, s.targets, acts, logits.data());
      bool ok = !s.targets.empty();
      for (size_t t = 0; t < s.targets.size(); ++t) {
        const float* z = logits.data() + t * static_cast<size_t>(c.n_vocab);
        const bool right = std::max_element(z, z + c.n_vocab) - z == s.targets[t].token;
        ok = ok && right;
        tokens_right[static_cast<size_t>(i)] += right ? 1 : 0;
      }
      tokens_all[static_cast<size_t>(i)] = static_cast<int64_t>(s.targets.size());
      correct[static_cast<size_t>(i)] = ok ? 1 : 0;
    }
  });
  int64_t n = 0, right = 0, all = 0;
  for (size_t i = 0; i < correct.size(); ++i) {
    n += correct[i];
    right += tokens_right[i];
    all += tokens_all[i];
  }
  return {static_cast<double>(n) / static_cast<double>(samples),
          static_cast<double>(right) / static_cast<double>(std::max<int64_t>(1, all))};
}

namespace {

std::string format_duration(double s) {
  const auto t = static_cast<int64_t>(std::max(0.0, s));
  return fmt::format("{}:{:02}:{:02}", t / 3600, t / 60 % 60, t % 60);
}

}  // namespace

void train_lm(const TrainOptions& opt) {
  const VocabSpec vocab = data::word_vocab_spec();
  const Tokenizer tokenizer{VocabSpec(vocab)};
  TrainOptions o = opt;
  o.model.n_vocab = static_cast<int64_t>(vocab.tokens.size());
  validate_config(o.model);
  validate_train_options(o);
  if (o.checkpoint.empty()) o.checkpoint = o.out + ".ckpt";

  Checkpoint ck;
  if (o.resume) {
    if (!std::filesystem::exists(o.checkpoint)) fail("--resume: no checkpoint at '{}'", o.checkpoint);
    ck = load_checkpoint(o.checkpoint);
    const LmConfig& a = ck.config;
    const LmConfig& b = o.model;
    if (a.n_vocab != b.n_vocab || a.dim != b.dim || a.n_layers != b.n_layers ||
        a.n_heads != b.n_heads || a.n_kv_heads != b.n_kv_heads || a.ff_dim != b.ff_dim ||
        a.tied_embeddings != b.tied_embeddings)
      fail("--resume: checkpoint '{}' has a different model shape than the flags", o.checkpoint);
    if (ck.seed != o.seed) fail("--resume: checkpoint seed {} differs from --seed {}", ck.seed, o.seed);
    fmt::print(stderr, "resuming from {} at step {}\n", o.checkpoint, ck.step);
  } else {
    if (std::filesystem::exists(o.checkpoint))
      fail("checkpoint '{}' exists: pass --resume to continue it, or remove it", o.checkpoint);
    ck.config = o.model;
    ck.seed = o.seed;
  }
  const LmConfig& c = o.model;
  const ParamLayout layout = make_layout(c);
  std::vector<float> params = o.resume ? ck.params : init_params(c, layout, o.seed, o.init_std);
  if (o.init_induction && !o.resume) {
    const InductionLayout il = init_induction_circuit(c, layout, o.seed, c.context_length, params);
    fmt::print(stderr, "induction circuit: content dims {}, match dims {}, window dims {}\n", il.content_dims,
               il.match_dims, il.window_dims);
  }
  AdamW adam(o.optimizer.adamw, decay_mask(c, layout));
  if (o.resume) {
    adam.m() = ck.adam_m;
    adam.v() = ck.adam_v;
  }
  ThreadPool pool(o.threads > 0 ? o.threads : ThreadPool::default_threads());
  const int n_parts = pool.size();
  fmt::print(stderr,
             "train-lm: {} parameters (dim {}, layers {}, heads {}/{}, ff {}, vocab {}), {} threads, "
             "{} steps\n",
             layout.total, c.dim, c.n_layers, c.n_heads, c.n_kv_heads, c.ff_dim, c.n_vocab,
             n_parts, o.optimizer.schedule.total_steps);

  std::vector<std::vector<float>> grads(static_cast<size_t>(n_parts), std::vector<float>(layout.total));
  std::vector<Activations> acts(static_cast<size_t>(n_parts));
  std::vector<double> part_loss(static_cast<size_t>(n_parts));
  std::vector<double> part_weight(static_cast<size_t>(n_parts));
  std::vector<int64_t> part_tokens(static_cast<size_t>(n_parts));
  const RopeTable rope = make_rope_table(c, o.data.max_length);
  const bool tty = isatty(STDERR_FILENO) != 0;
  ProgressLine progress("train-lm", o.optimizer.schedule.total_steps, "step");

  const double start = now_seconds();
  const double seconds_before = ck.seconds;
  const int64_t first_step = ck.step;
  double loss_sum = 0, tokens_window = 0, window_start = start;
  int64_t loss_count = 0;
  auto evaluate = [&](int64_t step) {
    std::string line = fmt::format("eval step {}:", step);
    for (const data::TaskFamily f : o.eval_families)
      for (const int64_t len : o.eval_lengths) {
        const RecallAccuracy acc = recall_accuracy(c, layout, params, tokenizer, f, len,
                                                   o.eval_samples, o.seed ^ 0xe7a1ull, pool);
        line += fmt::format(" {}@{} {:.3f} (tokens {:.3f})", data::family_name(f), len,
                            acc.samples, acc.tokens);
      }
    if (tty) fmt::print(stderr, "\n");
    fmt::print(stderr, "{}\n", line);
  };
  auto save = [&](int64_t step) {
    ck.step = step;
    ck.seconds = seconds_before + (now_seconds() - start);
    ck.params = params;
    ck.adam_m = adam.m();
    ck.adam_v = adam.v();
    save_checkpoint(ck, o.checkpoint);
    export_gguf(c, layout, params, vocab, o.out_type,
                fmt::format("needle-lm d{} l{} step {}", c.dim, c.n_layers, step), o.out);
  };

  int64_t step = first_step;
  for (; step < o.optimizer.schedule.total_steps; ++step) {
    const int64_t length = step_length(o.data, o.seed, step);
    const int64_t n_seq = step_sequences(o.data, length);
    pool.run([&](int part) {
      auto& g = grads[static_cast<size_t>(part)];
      std::fill(g.begin(), g.end(), 0.0f);
      part_loss[static_cast<size_t>(part)] = 0;
      part_weight[static_cast<size_t>(part)] = 0;
      part_tokens[static_cast<size_t>(part)] = 0;
      for (int64_t i = part; i < n_seq; i += n_parts) {
        const Sequence s = make_sequence(o.data, o.seed, step, i, tokenizer);
        Activations& a = acts[static_cast<size_t>(part)];
        part_loss[static_cast<size_t>(part)] +=
            forward(c, layout, params.data(), rope, s.tokens, s.targets, a);
        backward(c, layout, params.data(), rope, s.tokens, s.targets, a, g.data());
        for (const Target& t : s.targets) part_weight[static_cast<size_t>(part)] += t.weight;
        part_tokens[static_cast<size_t>(part)] += static_cast<int64_t>(s.tokens.size());
      }
    });
    double loss = 0, weight = 0;
    int64_t tokens = 0;
    for (int p = 0; p < n_parts; ++p) {
      loss += part_loss[static_cast<size_t>(p)];
      weight += part_weight[static_cast<size_t>(p)];
      tokens += part_tokens[static_cast<size_t>(p)];
    }
    // Weighted mean loss over the step's targets: sum the parts' gradients, scale once.
    std::vector<float>& g = grads[0];
    const float inv = 1.0f / static_cast<float>(std::max(1e-9, weight));
    for (int p = 1; p < n_parts; ++p) {
      const auto& gp = grads[static_cast<size_t>(p)];
      for (size_t i = 0; i < g.size(); ++i) g[i] += gp[i];
    }
    for (float& x : g) x *= inv;
    const double gnorm = adam.step(params, g, lr_at(o.optimizer.schedule, step), step);
    ck.tokens_seen += static_cast<double>(tokens);
    loss_sum += loss / std::max(1e-9, weight);
    ++loss_count;
    tokens_window += static_cast<double>(tokens);

    const int64_t done = step + 1;
    const double now = now_seconds();
    const double rate = tokens_window / std::max(1e-9, now - window_start);
    const double eta = (now - start) / static_cast<double>(done - first_step) *
                       static_cast<double>(o.optimizer.schedule.total_steps - done);
    progress.update(done, fmt::format("loss {:.3f} len {} {:.0f} tok/s", loss / std::max(1e-9, weight), length, rate));
    if (done % o.log_every == 0 && !tty) {
      fmt::print(stderr,
                 "step {}/{} loss {:.4f} gnorm {:.2f} lr {:.2e} len {} {:.0f} tok/s elapsed {} ETA {}\n",
                 done, o.optimizer.schedule.total_steps, loss_sum / static_cast<double>(loss_count), gnorm,
                 lr_at(o.optimizer.schedule, step), length, rate,
                 format_duration(seconds_before + now - start), format_duration(eta));
    }
    if (done % o.log_every == 0) {
      loss_sum = 0;
      loss_count = 0;
      tokens_window = 0;
      window_start = now;
    }
    if (o.eval_every > 0 && done % o.eval_every == 0 && done < o.optimizer.schedule.total_steps) evaluate(done);
    if (done % o.checkpoint_every == 0) save(done);
    if (o.max_seconds > 0 && now - start > o.max_seconds) {
      ++step;
      fmt::print(stderr, "\nstopping after {:.0f} s (--max-seconds); resume with --resume\n", now - start);
      break;
    }
  }
  progress.finish();
  save(step);
  evaluate(step);
  fmt::print(stderr, "done: step {}, {:.0f} training tokens, wall time {}; model {}, checkpoint {}\n",
             step, ck.tokens_seen, format_duration(ck.seconds), o.out, o.checkpoint);
}

}  // namespace flashmem::lm
