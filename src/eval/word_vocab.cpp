#include "eval/word_vocab.h"

#include <set>

#include "eval/words.h"

namespace flashmem::eval {

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
  return spec;
}

}  // namespace flashmem::eval
