// BPE pre-tokenizers: split text into the pieces that BPE merges never cross, following the
// regex cascades llama.cpp uses for each `tokenizer.ggml.pre` value. Each stage re-splits every
// piece of the previous stage; the regexes are implemented by hand over Unicode categories.
#pragma once
#include <string>
#include <string_view>
#include <vector>

namespace flashmem {

enum class PreTokenizer {
  kDefault,        // "default": punctuation runs, GPT-2 regex, digit runs, digit triples
  kGpt2,           // "gpt-2" (and the other names llama.cpp maps to it): the GPT-2 regex
  kStarcoder,      // "starcoder": single digits, then the GPT-2 regex
  kDeepseekCoder,  // "deepseek-coder": newlines, letters, punctuation, CJK runs, single digits
};

// Maps a `tokenizer.ggml.pre` value to its pre-tokenizer; throws Error naming an unknown value.
PreTokenizer pre_tokenizer_from_name(std::string_view name);

// Splits `text` into pieces (UTF-8; invalid sequences become U+FFFD as in llama.cpp). The pieces
// concatenate to the (repaired) text. Cost: linear in the text length.
std::vector<std::string> pre_tokenize(PreTokenizer kind, std::string_view text);

}  // namespace flashmem
