#include "data/word_vocab.h"

#include <set>

#include <fmt/format.h>

#include "data/words.h"

namespace flashmem::data {

VocabSpec word_vocab_spec() {
  static const std::string kSpace = "\u2581";
  VocabSpec spec;
  spec.model = TokenizerModel::kSpm;
  auto add = [&](const std::string& text, TokenType type, float score) {
    spec.tokens.push_back(text);
    spec.token_types.push_back(static_cast<int32_t>(type));
    spec.scores.push_back(score);
  };
  add("<unk>", TokenType::kUnknown, 0.0f);
  add("<s>", TokenType::kControl, 0.0f);
  add("</s>", TokenType::kControl, 0.0f);
  spec.unk_id = 0;
  spec.bos_id = 1;
  spec.eos_id = 2;
  // Single characters: the space marker, newline, and printable ASCII (spaces become U+2581).
  add(kSpace, TokenType::kNormal, 0.0f);
  add("\n", TokenType::kNormal, 0.0f);
  for (char c = 33; c < 127; ++c) add(std::string(1, c), TokenType::kNormal, 0.0f);
  // Word-initial characters, then every word with its prefixes. Score = length: a longer piece
  // wins when two merges compete (only prefix chains exist, so this is just a tie-break).
  std::set<std::string> seen;
  auto add_piece = [&](const std::string& piece, size_t length) {
    if (seen.insert(piece).second) add(piece, TokenType::kNormal, static_cast<float>(length));
  };
  for (char c = 33; c < 127; ++c) add_piece(kSpace + std::string(1, c), 1);
  for (const std::string& word : generator_words())
    for (size_t k = 2; k <= word.size(); ++k) add_piece(kSpace + word.substr(0, k), k);
  // Digit groups "00".."99" and "000".."999" (scores 2 and 3, above the single "▁d" pieces): a
  // number splits into 3-digit groups from the left ("3782303" -> 378 230 3), as Llama-3-style
  // tokenizers do. Why: with one token per digit every digit occurs everywhere in a haystack of
  // numbers, so copying a 7-digit value needs matching on several previous digits; with groups
  // of 1,000 symbols the token before the one to copy is nearly unique, the one-token copy
  // (induction) a 2-layer model learns quickly. The 2-digit groups are the merge path to 3.
  for (int n = 0; n < 100; ++n) add(fmt::format("{:02d}", n), TokenType::kNormal, 2.0f);
  for (int n = 0; n < 1000; ++n) add(fmt::format("{:03d}", n), TokenType::kNormal, 3.0f);
  return spec;
}

}  // namespace flashmem::data
