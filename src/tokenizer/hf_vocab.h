// Byte-level BPE vocabularies from Hugging Face tokenizer files, read as llama.cpp's
// convert_hf_to_gguf.py reads them (get_vocab_base + gguf-py's SpecialVocab):
//   - tokens by id from model.vocab and added_tokens; ids nobody names become "[PAD<id>]" of
//     type unused; added tokens are control tokens when marked special or when they look special
//     (<|...|>, <｜...｜>, <pad>, <mask>, <2mass>, [@BOS@], <unused...>), user-defined otherwise
//     (U+2581 in their text becomes a space); other tokens are normal;
//   - merges as "left right" strings (the pair form has its spaces written as U+0120);
//   - BOS/EOS/UNK/PAD ids from tokenizer_config.json's *_token texts looked up in added_tokens;
//     add_bos/add_eos from a TemplateProcessing post-processor (a leading BOS / trailing EOS),
//     then from tokenizer_config.json's add_bos_token / add_eos_token.
// Not done (the converter uses transformers for these): re-normalising added tokens marked
// "normalized": false by an encode/decode round trip, and the model-specific fixes some
// converters apply. The pre-tokenizer name is the caller's (the converter hashes a test string).
#pragma once
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "tokenizer/tokenizer.h"

namespace flashmem {

struct HfVocabOptions {
  std::string pre = {};                 // tokenizer.ggml.pre to record; must be supported
  std::optional<int64_t> vocab_size = std::nullopt;  // config.json's vocab_size: pads with [PAD<id>] tokens
};

// `tokenizer_json`: the text of tokenizer.json; `tokenizer_config_json`: the text of
// tokenizer_config.json or empty. Throws Error on malformed JSON, a model that is not
// byte-level BPE, duplicate or out-of-range ids, or a vocab_size smaller than the ids used.
VocabSpec vocab_spec_from_hf(std::string_view tokenizer_json, std::string_view tokenizer_config_json,
                             const HfVocabOptions& options);

}  // namespace flashmem
