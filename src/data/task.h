// RULER-style synthetic long-context tasks. A sample is fully determined by (spec, seed,
// tokenizer): the prompt text, the expected answer strings, and the token positions of the
// evidence (so golden evidence is known without running a model). Lengths are measured in tokens
// of the target model's tokenizer, BOS included (prompts are encoded as `flashmem run` does).
//
// Families (RULER's definitions, our own wording):
//   niah_single     one needle "One of the special magic numbers for KEY is: VALUE." in filler;
//                   the question ends "... The special magic number for KEY is:" so the answer
//                   continues the same "for KEY is:" the needle has (an induction pattern)
//   niah_multikey   several needles with distinct keys, one asked
//   niah_multivalue one key with several values; all must be returned
//   niah_multiquery several needles, several keys asked; all their values must be returned
//   vt              variable tracking: VAR A = 12345, VAR B = VAR A, ...; return every name
//   fwe             frequent-word extraction: Zipf-distributed coded words; return the top 3
#pragma once
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace flashmem {
class Tokenizer;
}

namespace flashmem::data {

enum class TaskFamily { kNiahSingle, kNiahMultikey, kNiahMultivalue, kNiahMultiquery, kVt, kFwe };
enum class ValueKind { kNumber, kWord, kUuid };  // 7-digit number | adjective | 4-4-4 hex
enum class FillerKind { kNoise, kWords };        // repeated noise sentences | random words

// Parse/print the names used on the command line; parsing throws Error on an unknown name.
TaskFamily parse_family(std::string_view name);
ValueKind parse_value_kind(std::string_view name);
FillerKind parse_filler_kind(std::string_view name);
std::string_view family_name(TaskFamily f);
std::string_view value_kind_name(ValueKind v);
std::string_view filler_kind_name(FillerKind f);
// All families in a fixed order (reports iterate this).
std::vector<TaskFamily> all_families();

struct TaskSpec {
  TaskFamily family = TaskFamily::kNiahSingle;
  int64_t length = 1024;  // target prompt length in tokens (BOS included); the sample is at most
                          // this long and at least length minus one filler unit
  ValueKind value = ValueKind::kNumber;  // niah_* only
  FillerKind filler = FillerKind::kNoise;
  // Needles: multikey/multiquery = keys in the haystack, multivalue = values of the key,
  // vt = variables in the chain. 0 = the family default (4, as RULER's defaults; niah_single 1).
  int n_needles = 0;
  // Questions, each followed by its answer in the text (training form): up to n_needles for
  // niah_single/multikey, 1 for multivalue/multiquery/vt, none for fwe. 0 = the evaluation form,
  // a single unanswered question ending the prompt.
  int n_answered = 0;
};

// Throws Error on an invalid spec (length < 1, needle counts out of range for the family, ...).
void validate_task_spec(const TaskSpec& spec);

struct TokenSpan {
  int64_t begin = 0, end = 0;  // token positions [begin, end) in TaskSample::tokens
};

struct TaskSample {
  TaskSpec spec;
  uint64_t seed = 0;
  std::string prompt;                // the text fed to the model
  std::vector<int32_t> tokens;       // prompt tokens as `flashmem run` encodes them (with BOS)
  std::vector<std::string> answers;  // expected strings; all must appear in the output
  std::vector<TokenSpan> evidence;   // token spans of the needles (vt: every chain link; fwe:
                                     // every occurrence of a top-3 word)
  // Training form (n_answered > 0): token spans of each answer inside the prompt; the model
  // learns to predict the tokens at these positions.
  std::vector<TokenSpan> answer_spans;
};

// Generates one sample. Throws Error when the spec is invalid or the length is too short for
// the fixed parts (header, needles, question).
TaskSample generate_task(const TaskSpec& spec, uint64_t seed, const Tokenizer& tokenizer);

// RULER's string-match-all: the fraction of `answers` that occur in `output` (case-sensitive
// substring match); 1.0 means the sample is solved.
double score_output(const std::vector<std::string>& answers, std::string_view output);

}  // namespace flashmem::data
