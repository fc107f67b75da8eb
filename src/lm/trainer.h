// train-lm: the training loop (data-parallel over sequences on the project thread pool),
// periodic retrieval evaluation, checkpoints with resume, and the GGUF export.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "data/task.h"
#include "lm/data.h"
#include "lm/lm_params.h"
#include "lm/optimizer.h"
#include "tensor/dtype.h"

namespace flashmem {
class ThreadPool;
class Tokenizer;
}

namespace flashmem::lm {

struct TrainOptions {
  LmConfig model;  // n_vocab is taken from the word vocabulary
  OptimizerOptions optimizer;
  DataOptions data;
  uint64_t seed = 1;
  int threads = 0;                  // 0 = all hardware threads
  std::string out;                  // GGUF, re-exported at every checkpoint and at the end
  std::string checkpoint;           // default: out + ".ckpt"
  bool resume = false;              // continue from `checkpoint` (must exist)
  int64_t checkpoint_every = 100;   // steps
  int64_t eval_every = 100;         // steps; 0 = only at the end
  int64_t eval_samples = 32;        // per family and length
  std::vector<int64_t> eval_lengths = {512, 2048};
  // Families of the periodic evaluation (one accuracy per family and length in the log line).
  std::vector<data::TaskFamily> eval_families = {data::TaskFamily::kNiahSingle,
                                                 data::TaskFamily::kNiahMultikey};
  int64_t log_every = 10;           // steps between log lines (non-terminal stderr)
  DType out_type = DType::F32;
  double max_seconds = 0;           // stop after this much wall time (checkpointed); 0 = none
  double init_std = 0.02;           // initial weight std; 0 = 1/sqrt(fan-in) (see init_params)
  bool init_induction = false;      // start from a working induction circuit (lm/induction_init.h)
};

void validate_train_options(const TrainOptions& o);

struct RecallAccuracy {
  double samples = 0;  // fraction of samples whose answer tokens are all the argmax
  double tokens = 0;   // fraction of answer tokens that are the argmax (shows progress earlier)
};

// Teacher-forced retrieval accuracy in the training form (n_answered = 1) of `family` at
// `length`: with every answer token the argmax, greedy decoding produces the answer. Samples are
// seeded from `seed`.
RecallAccuracy recall_accuracy(const LmConfig& c, const ParamLayout& layout, const std::vector<float>& params,
                       const Tokenizer& tokenizer, data::TaskFamily family, int64_t length,
                       int64_t samples, uint64_t seed, ThreadPool& pool);

// Runs (or resumes) training; throws Error on bad options, I/O failure or divergence.
void train_lm(const TrainOptions& o);

}  // namespace flashmem::lm
