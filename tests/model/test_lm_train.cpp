// train-lm end to end: a tiny model overfits 8 samples; the exported GGUF runs in the engine with
// the trainer's logits (RoPE, layout, GQA, norms all agree); checkpoint + resume reproduces an
// uninterrupted run bit for bit; the CLI tokenizes and runs the produced file.
#include <gtest/gtest.h>

#include <cstdio>
#include <filesystem>
#include <random>

#include "eval/harness.h"
#include "data/task.h"
#include "data/word_vocab.h"
#include "gguf/gguf.h"
#include "lm/checkpoint.h"
#include "lm/data.h"
#include "lm/export.h"
#include "lm/lm_forward.h"
#include "lm/optimizer.h"
#include "lm/trainer.h"
#include "model/model.h"
#include "engine/session.h"
#include "tokenizer/tokenizer.h"
#include "util/error.h"

namespace flashmem::lm {
namespace {

namespace fs = std::filesystem;

fs::path temp_dir(const std::string& name) {
  fs::path d = fs::temp_directory_path() / ("flashmem_lm_" + name + "_" + std::to_string(::getpid()));
  fs::remove_all(d);
  fs::create_directories(d);
  return d;
}

const VocabSpec& vocab() {
  static const VocabSpec v = data::word_vocab_spec();
  return v;
}
const Tokenizer& tokenizer() {
  static const Tokenizer t{VocabSpec(vocab())};
  return t;
}

LmConfig small_config() {
  return {.n_vocab = static_cast<int64_t>(vocab().tokens.size()), .dim = 64, .n_layers = 2, .n_heads = 4,
          .n_kv_heads = 2, .ff_dim = 128, .context_length = 512};
}

TEST(LmTrain, TinyModelOverfitsEightSamples) {
  const LmConfig c = small_config();
  const ParamLayout l = make_layout(c);
  std::vector<float> params = init_params(c, l, 1);
  std::vector<Sequence> data;
  for (uint64_t s = 0; s < 8; ++s) {
    data::TaskSpec spec;
    spec.family = data::TaskFamily::kNiahMultikey;
    spec.length = 160;
    spec.n_needles = 3;
    spec.n_answered = 2;
    data.push_back(sample_to_sequence(data::generate_task(spec, s, tokenizer()), false));
  }
  OptimizerOptions o;
  o.schedule.peak_lr = 1e-2;  // a large rate is fine when memorising a fixed batch
  o.schedule.warmup_steps = 10;
  o.schedule.total_steps = 200;
  o.adamw.weight_decay = 0;
  AdamW adam(o.adamw, decay_mask(c, l));
  const RopeTable rope = make_rope_table(c, 160);
  Activations acts;
  std::vector<float> grads(l.total);
  double first = 0, last = 0;
  for (int64_t step = 0; step < o.schedule.total_steps; ++step) {
    std::fill(grads.begin(), grads.end(), 0.0f);
    double loss = 0;
    int64_t n = 0;
    for (const Sequence& s : data) {
      loss += forward(c, l, params.data(), rope, s.tokens, s.targets, acts);
      backward(c, l, params.data(), rope, s.tokens, s.targets, acts, grads.data());
      n += static_cast<int64_t>(s.targets.size());
    }
    for (float& g : grads) g /= static_cast<float>(n);
    adam.step(params, grads, lr_at(o.schedule, step), step);
    if (step == 0) first = loss / n;
    last = loss / n;
  }
  EXPECT_GT(first, 3.0);  // starts near ln(vocab)
  EXPECT_LT(last, 0.05) << "did not overfit 8 samples (first loss " << first << ")";
}

TEST(LmTrain, EngineLogitsEqualTrainerLogits) {
  const LmConfig c = small_config();
  const ParamLayout l = make_layout(c);
  // Larger-than-init weights so attention is far from uniform and RoPE matters.
  std::vector<float> params = init_params(c, l, 2);
  std::mt19937_64 rng(4);
  std::normal_distribution<float> normal(0.0f, 0.15f);
  for (const ParamTensor& t : param_tensors(c, l))
    for (int64_t i = 0; i < t.rows * t.cols; ++i)
      params[t.offset + i] = t.rows == 1 ? 1.0f + normal(rng) : 2.0f * normal(rng);
  const fs::path dir = temp_dir("engine");
  const std::string path = (dir / "m.gguf").string();
  export_gguf(c, l, params, vocab(), DType::F32, "test", path);

  data::TaskSpec spec;
  spec.length = 300;
  const data::TaskSample s = data::generate_task(spec, 9, tokenizer());
  const auto T = static_cast<int64_t>(s.tokens.size());
  std::vector<Target> all;
  for (int64_t p = 0; p < T; ++p) all.push_back({p, 0});
  std::vector<float> expected(static_cast<size_t>(T * c.n_vocab));
  Activations acts;
  forward(c, l, params.data(), make_rope_table(c, T), s.tokens, all, acts, expected.data());

  auto model = Model::load(path);
  SessionOptions so;
  so.kv_type = DType::F32;
  so.n_threads = 2;
  so.max_batch = 64;  // several prefill batches: positions continue across batches
  Session session(model, so);
  std::vector<float> got(expected.size());
  session.forward(s.tokens, got.data(), /*all_logits=*/true);
  double max_diff = 0, max_abs = 0;
  for (size_t i = 0; i < got.size(); ++i) {
    max_diff = std::max(max_diff, static_cast<double>(std::fabs(got[i] - expected[i])));
    max_abs = std::max(max_abs, static_cast<double>(std::fabs(expected[i])));
  }
  EXPECT_GT(max_abs, 1.0);
  EXPECT_LT(max_diff, 2e-3 * max_abs) << "engine and trainer disagree";
  fs::remove_all(dir);
}

TrainOptions tiny_run(const fs::path& dir, int64_t steps) {
  TrainOptions o;
  o.model = small_config();
  o.model.dim = 32;
  o.model.ff_dim = 64;
  o.model.n_layers = 1;
  o.optimizer.schedule.total_steps = steps;
  o.optimizer.schedule.warmup_steps = 2;
  o.data.min_length = 128;
  o.data.max_length = 256;
  o.data.ramp_steps = 4;
  o.data.batch_tokens = 512;
  o.threads = 2;
  o.out = (dir / "m.gguf").string();
  o.checkpoint_every = 2;
  o.eval_every = 0;
  o.eval_samples = 2;
  o.eval_lengths = {256};
  return o;
}

TEST(LmTrain, ResumeReproducesAnUninterruptedRun) {
  const fs::path a = temp_dir("straight"), b = temp_dir("resumed");
  train_lm(tiny_run(a, 4));
  TrainOptions first = tiny_run(b, 4);
  first.max_seconds = 1e-9;  // stops after the first step, checkpointed
  train_lm(first);
  EXPECT_EQ(load_checkpoint((b / "m.gguf.ckpt").string()).step, 1);
  EXPECT_THROW(train_lm(tiny_run(b, 4)), Error);  // checkpoint exists, no --resume
  TrainOptions rest = tiny_run(b, 4);
  rest.resume = true;
  train_lm(rest);
  const Checkpoint x = load_checkpoint((a / "m.gguf.ckpt").string());
  const Checkpoint y = load_checkpoint((b / "m.gguf.ckpt").string());
  EXPECT_EQ(x.step, 4);
  EXPECT_EQ(y.step, 4);
  EXPECT_EQ(x.params, y.params);
  EXPECT_EQ(x.adam_v, y.adam_v);
  // The exported model loads in the engine.
  EXPECT_NO_THROW(Model::load((b / "m.gguf").string()));
  fs::remove_all(a);
  fs::remove_all(b);
}

TEST(LmTrain, CliTokenizesAndRunsTheExportedModel) {
  const fs::path dir = temp_dir("cli");
  train_lm(tiny_run(dir, 2));
  const std::string model = (dir / "m.gguf").string();
  const std::string out = (dir / "out.txt").string();
  const std::string cmd = std::string(FLASHMEM_BIN) + " tokenize -m " + model +
                          " --text 'One of the special magic numbers for apple is: 12.' --pieces > " + out;
  ASSERT_EQ(std::system(cmd.c_str()), 0);
  const std::string run = std::string(FLASHMEM_BIN) + " run -m " + model +
                          " -p 'Question: What is the special magic number for apple?' -n 4 > " + out;
  EXPECT_EQ(std::system(run.c_str()), 0);
  const std::string bad = std::string(FLASHMEM_BIN) + " train-lm --out " + (dir / "x.gguf").string() +
                          " --dim 30 --heads 4 2> " + out;
  EXPECT_NE(std::system(bad.c_str()), 0);  // dim not a multiple of 2·heads: clean error
  const std::string bad_family = std::string(FLASHMEM_BIN) + " eval-tasks -m " + model +
                                 " --families niah --samples 1 2> " + out;
  EXPECT_NE(std::system(bad_family.c_str()), 0);
  const std::string gen = std::string(FLASHMEM_BIN) + " gen-task --family vt --length 300 -m " +
                          model + " --out " + (dir / "task.txt").string() + " > " + out;
  EXPECT_EQ(std::system(gen.c_str()), 0);
  fs::remove_all(dir);
}

TEST(LmTrain, HarnessScoresEverySample) {
  const fs::path dir = temp_dir("harness");
  train_lm(tiny_run(dir, 1));
  auto model = Model::load((dir / "m.gguf").string());
  eval::HarnessOptions o;
  o.families = {data::TaskFamily::kNiahSingle, data::TaskFamily::kVt};
  o.lengths = {200, 300};
  o.samples = 3;
  int calls = 0;
  auto make = [&](int64_t n_ctx) {
    SessionOptions so;
    so.n_ctx = n_ctx;
    so.n_threads = 1;
    return std::make_unique<Session>(model, so);
  };
  const auto results = eval::evaluate_tasks(o, tokenizer(), make,
                                            [&](const data::TaskSample& s, const std::string&, double score) {
                                              ++calls;
                                              EXPECT_GE(score, 0.0);
                                              EXPECT_LE(score, 1.0);
                                              EXPECT_LE(static_cast<int64_t>(s.tokens.size()), s.spec.length);
                                            });
  ASSERT_EQ(results.size(), 4u);
  EXPECT_EQ(calls, 12);
  EXPECT_EQ(results[3].plan.family, data::TaskFamily::kVt);
  EXPECT_EQ(results[3].plan.length, 300);
  EXPECT_EQ(results[3].n, 3);
  for (const auto& r : results) EXPECT_LE(r.solved, r.accuracy);
  fs::remove_all(dir);
}

TEST(LmTrain, CorruptCheckpointIsRejected) {
  const fs::path dir = temp_dir("corrupt");
  const std::string path = (dir / "c.ckpt").string();
  Checkpoint ck;
  ck.config = small_config();
  const ParamLayout l = make_layout(ck.config);
  ck.params.assign(l.total, 0.5f);
  ck.adam_m.assign(l.total, 0.0f);
  ck.adam_v.assign(l.total, 0.0f);
  save_checkpoint(ck, path);
  EXPECT_EQ(load_checkpoint(path).params, ck.params);
  ck.params[3] = NAN;
  save_checkpoint(ck, path);
  EXPECT_THROW(load_checkpoint(path), Error);
  fs::resize_file(path, fs::file_size(path) - 7);
  EXPECT_THROW(load_checkpoint(path), Error);
  fs::remove_all(dir);
}

}  // namespace
}  // namespace flashmem::lm
