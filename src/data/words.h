// The word lists the task generator draws from: needle keys, word values, filler words, noise
// sentences and the fixed words of the prompt templates. A word-level tokenizer built from
// generator_words() (word_vocab.h) turns every one of them into a single token.
#pragma once
#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace flashmem::data {

// Needle keys (nouns). Distinct keys per sample are drawn from here.
std::span<const std::string_view> key_words();
// Values of the `word` variant (adjectives, disjoint from the keys so a value never names a key).
std::span<const std::string_view> value_words();
// Haystack words of the `words` filler (keys and values are not among them, so the filler never
// contains a needle's key or value by accident).
std::span<const std::string_view> filler_words();
// The `noise` filler: short plain sentences repeated in random order.
std::span<const std::string_view> noise_sentences();
// Every space-separated word the generator can emit except numbers, uuid-like values, variable
// names and coded words (those are spelled out of single characters): template words, the lists
// above, and the words of the noise sentences. Sorted, unique, punctuation stripped.
std::vector<std::string> generator_words();

}  // namespace flashmem::data
