// A word-level SentencePiece-style vocabulary for models trained on generated tasks: every word
// of generator_words() is one token, everything else (numbers, uuid-like values, variable names,
// coded words) is spelled with single characters. Written into a GGUF as an ordinary
// `tokenizer.ggml.model = "llama"` vocabulary, so the engine's SPM tokenizer reads it.
//
// SPM merges adjacent pieces only when the concatenation is a token, so a word "▁river" is
// reachable only through its prefixes "▁r", "▁ri", "▁riv", ...; they are in the vocabulary (and
// never produced for a full word). No piece other than these prefixes has more than one
// character, so tokenization of a space-separated text never crosses a word boundary.
#pragma once
#include "tokenizer/tokenizer.h"

namespace flashmem::data {

// Ids 0, 1, 2 are <unk>, <s> (BOS, added on encode), </s> (EOS).
VocabSpec word_vocab_spec();

}  // namespace flashmem::data
