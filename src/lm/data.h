// Training data for train-lm: dense multi-query associative recall in the task generator's
// niah format. Each sequence holds many needles ("... for KEY is: VALUE."; the key immediately
// followed by its value) in filler, then several questions each followed by its answer; the loss
// is on every answer token. Lengths follow a curriculum from short to long. Everything is a
// function of (seed, step, index), so a resumed run sees the same data stream.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "data/rng.h"
#include "data/task.h"
#include "lm/lm_forward.h"

namespace flashmem {
class Tokenizer;
}

namespace flashmem::lm {

// One entry of the task-family mix: sequences of `family` are drawn with probability
// weight / (sum of weights).
struct FamilyWeight {
  data::TaskFamily family = data::TaskFamily::kNiahMultikey;
  double weight = 1.0;
};

// Parses "niah_multikey:4,vt:2,niah_single" (a missing weight is 1); throws Error on an unknown
// family, a family without a training form (fwe), a repeated family or a weight <= 0.
std::vector<FamilyWeight> parse_family_mix(const std::vector<std::string>& items);

struct DataOptions {
  int64_t min_length = 256;   // shortest sequences (tokens): where retrieval is learned first
  int64_t max_length = 2048;  // longest sequences at the end of the ramp
  int64_t ramp_steps = 1000;  // steps over which the longest length grows (geometrically)
  int64_t batch_tokens = 8192;  // tokens per optimizer step (sequences = batch / length)
  int64_t needle_every = 48;  // one needle per this many tokens (dense: ~1/3 of the text)
  int64_t query_every = 128;  // one answered question per this many tokens (≤ needles)
  // Needle-count curriculum: the most needles a sequence may hold grows linearly from 1 to the
  // density target over these steps. With one needle the answer is "copy the value after
  // 'is:'", a pure copying task learned quickly; more needles then add the key matching.
  int64_t needle_ramp_steps = 0;
  double word_values = 0.2;   // fraction of samples with word values
  double uuid_values = 0.1;   // fraction with uuid-like values (the rest: numbers)
  double word_filler = 0.5;   // fraction with random-word filler (the rest: noise sentences)
  // Cross-entropy weight of every non-answer token (0 = answers only). Predicting repeated noise
  // sentences and the question's second mention of its key rewards copying from context, which
  // builds the induction heads retrieval needs, long before the answers' loss moves.
  double lm_weight = 0.0;
  // Fraction of sequences that are a random token string followed by its exact repeat, with the
  // loss on every repeated token; it falls linearly to 0 over repeat_steps (0 = constant). Why:
  // every second-half token rewards the induction circuit ("find the previous occurrence of the
  // current token, copy its successor") that retrieval is built from, with ~L/2 targets per
  // sequence instead of a few answer tokens, so the circuit forms in far fewer steps.
  double repeat_fraction = 0.0;
  int64_t repeat_steps = 0;
  // Task families of the non-repeat sequences. niah_single and niah_multikey are the dense form
  // above (many needles, many answered questions); niah_multivalue, niah_multiquery and vt have
  // one answered question (the generator's training form) with 2 to kMixMaxNeedles needles.
  // Default: niah_multikey only (needle-lm's recipe; its stream does not change).
  std::vector<FamilyWeight> families = {{data::TaskFamily::kNiahMultikey, 1.0}};
};

// Most needles (values, keys, chain variables) of a one-question family sample in the mix.
// Why 6: two above the evaluation default (4 values/keys; vt 5 variables), so evaluation sits
// inside the trained range.
constexpr int kMixMaxNeedles = 6;

void validate_data_options(const DataOptions& o);

struct Sequence {
  std::vector<int32_t> tokens;
  std::vector<Target> targets;  // every answer token (predicted from the position before it)
};

// Sequence length of step `step` (all sequences of a step share it, which balances threads).
int64_t step_length(const DataOptions& o, uint64_t seed, int64_t step);
// Sequences per step at that length (at least 1).
int64_t step_sequences(const DataOptions& o, int64_t length);
// Sequence `index` of step `step`.
Sequence make_sequence(const DataOptions& o, uint64_t seed, int64_t step, int64_t index,
                       const Tokenizer& tokenizer);

// `length` tokens: BOS, then runs of random ordinary ids [3, n_vocab) alternating with copies of
// 4-24 earlier tokens from random starts; every copied token after a copy's first is a target.
Sequence repeat_sequence(int64_t length, int32_t n_vocab, int32_t bos, data::Rng& rng);

// A training-form sample (answers in the text) as targets on its answer tokens (weight 1). With
// `drop_final_token` the last token of each answer (the closing ".") is not a target. With
// lm_weight > 0 every other next-token prediction is a target of that weight.
Sequence sample_to_sequence(const data::TaskSample& s, bool drop_final_token, double lm_weight = 0);

}  // namespace flashmem::lm
