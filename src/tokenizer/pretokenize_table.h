// The BPE pre-tokenizers as data: each `tokenizer.ggml.pre` name llama.cpp knows maps to its
// cascade of split regexes (table dialect: see regex_split.h) and the vocabulary defaults that
// llama.cpp ties to the name.
#pragma once
#include <string_view>
#include <vector>

namespace flashmem {

struct PreTokenizerSpec {
  std::vector<std::string_view> names;    // `tokenizer.ggml.pre` values
  std::vector<std::string_view> regexes;  // applied in order; each re-splits every piece
  bool ignore_merges = false;    // a pre-token that is itself a token skips the merges
  bool add_bos = false;          // default of `tokenizer.ggml.add_bos_token`
  bool has_default_bos = true;   // false: no BOS id unless the file names one
};

const std::vector<PreTokenizerSpec>& pre_tokenizer_table();

}  // namespace flashmem
