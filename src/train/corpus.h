// Corpus sources of `flashmem dump` (DESIGN.md): JSONL ({"prompt", "continuation"} or chat
// "messages"), plain text files, generate:N (documents sampled from the model from BOS) and
// tasks:FAMILIES:N (the evaluation suite's generated long-context tasks, src/data/task.h).
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "tokenizer/tokenizer.h"

namespace flashmem {

// One document: `prompt` is context only (never labeled); `text` is teacher-forced and labeled,
// or, in generate-then-label mode, replaced by the model's own continuation.
struct CorpusDocument {
  std::string id;               // stable across runs: "<source>#<n>"
  std::vector<int32_t> prompt;
  std::vector<int32_t> text;
};

struct CorpusOptions {
  int64_t max_tokens = 512;     // documents are cut (JSONL) or windowed (text) to this length
  int64_t label_from = 64;      // text files: the first label_from tokens of a window are prompt
  uint64_t seed = 0;            // tasks:...: document i is generated with seed + i
};

// `source`: "generate:N", "tasks:FAMILY[,FAMILY...]:N" (or "tasks:all:N"; families taken in
// turn, prompt = the task up to the question, text = the expected answer, so teacher-forced
// labels are the answer tokens' attention on the haystack), a .jsonl file, or a plain text file. Throws Error on unreadable files,
// bad JSON (naming the line), or a document that tokenizes to nothing.
std::vector<CorpusDocument> load_corpus(const std::string& source, const Tokenizer& tokenizer,
                                        const CorpusOptions& options);

}  // namespace flashmem
