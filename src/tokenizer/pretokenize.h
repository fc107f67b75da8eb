// BPE pre-tokenizers: split text into the pieces that BPE merges never cross. A
// `tokenizer.ggml.pre` name selects a cascade of regexes (pretokenize_table.cpp, llama.cpp's
// sets); each stage re-splits every piece of the previous stage (regex_split.h).
#pragma once
#include <memory>
#include <string>
#include <string_view>
#include <vector>

namespace flashmem {

struct PreTokenizerSpec;

class PreTokenizer {
 public:
  // Compiles the cascade for a `tokenizer.ggml.pre` value; throws Error naming an unknown value.
  static PreTokenizer from_name(std::string_view name);

  // llama.cpp's vocabulary defaults tied to the name (see PreTokenizerSpec).
  bool ignore_merges() const;
  bool add_bos() const;
  bool has_default_bos() const;

  // Splits `text` into pieces (UTF-8; invalid sequences become U+FFFD as in llama.cpp). The
  // pieces concatenate to the (repaired) text. Thread-safe.
  std::vector<std::string> split(std::string_view text) const;

 private:
  struct Compiled;
  explicit PreTokenizer(std::shared_ptr<const Compiled> compiled);
  std::shared_ptr<const Compiled> compiled_;  // immutable; shared by copies
};

}  // namespace flashmem
