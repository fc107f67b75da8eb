#include "tokenizer/tokenizer.h"

#include <algorithm>

#include "gguf/gguf.h"
#include "tokenizer/unicode.h"
#include "tokenizer/vocab.h"
#include "util/error.h"

namespace flashmem {
namespace {

constexpr std::string_view kSpmSpace = "\xE2\x96\x81";  // U+2581 LOWER ONE EIGHTH BLOCK

// A run of the input: either plain text or an already-recognised special token.
struct Fragment {
  int32_t token = -1;     // >= 0: a special token
  size_t begin = 0, end = 0;  // plain text: byte range in the input
};

// Splits the input at every occurrence of the special tokens' texts, longest token first (as
// llama.cpp: each token is searched in the text fragments the longer ones left).
// Cost: O(n_special * text length) in the worst case; one memchr-driven find per token.
std::vector<Fragment> partition_special(const Vocab& vocab, std::string_view text,
                                        bool parse_special) {
  std::vector<Fragment> fragments;
  if (text.empty()) return fragments;
  fragments.push_back({-1, 0, text.size()});
  std::vector<Fragment> next;
  for (const int32_t id : vocab.special_tokens) {
    if (!parse_special && vocab.type[id] != TokenType::kUserDefined) continue;
    const std::string& needle = vocab.text[id];
    bool changed = false;
    next.clear();
    for (const Fragment& f : fragments) {
      if (f.token >= 0) {
        next.push_back(f);
        continue;
      }
      size_t pos = f.begin;
      while (pos < f.end) {
        const size_t hit = text.substr(0, f.end).find(needle, pos);
        if (hit == std::string_view::npos) break;
        if (hit > pos) next.push_back({-1, pos, hit});
        next.push_back({id, 0, 0});
        pos = hit + needle.size();
        changed = true;
      }
      if (pos < f.end) next.push_back({-1, pos, f.end});
    }
    if (changed) fragments.swap(next);
  }
  return fragments;
}

void check_id(const Vocab& vocab, int32_t id) {
  if (id < 0 || id >= vocab.n_vocab()) {
    fail("token id {} is outside the vocabulary (size {})", id, vocab.n_vocab());
  }
}

void append_spm_escaped(std::string& out, std::string_view text) {
  for (const char c : text) {
    if (c == ' ') {
      out += kSpmSpace;
    } else {
      out += c;
    }
  }
}

}  // namespace

Tokenizer::Tokenizer(VocabSpec spec)
    : vocab_(std::make_shared<const Vocab>(build_vocab(std::move(spec)))) {}

Tokenizer Tokenizer::from_gguf(const GgufFile& file) {
  VocabSpec spec = read_vocab_spec(file);
  try {
    return Tokenizer(std::move(spec));
  } catch (const Error& e) {
    fail("{}: {}", file.name(), e.what());
  }
}

std::vector<int32_t> Tokenizer::encode(std::string_view text, bool add_special,
                                       bool parse_special) const {
  const Vocab& v = *vocab_;
  std::vector<int32_t> out;
  out.reserve(text.size() / 3 + 2);
  if (add_special && v.add_bos) out.push_back(v.bos);
  const std::vector<Fragment> fragments = partition_special(v, text, parse_special);
  if (v.model == TokenizerModel::kSpm) {
    // A space prefix goes before the text at the start and after every special token.
    bool after_special = true;
    std::string escaped;
    for (const Fragment& f : fragments) {
      if (f.token >= 0) {
        out.push_back(f.token);
        after_special = true;
        continue;
      }
      escaped.clear();
      if (v.add_space_prefix && after_special) escaped += kSpmSpace;
      append_spm_escaped(escaped, text.substr(f.begin, f.end - f.begin));
      spm_encode(v, escaped, out);
      after_special = false;
    }
  } else {
    for (const Fragment& f : fragments) {
      if (f.token >= 0) {
        out.push_back(f.token);
      } else {
        bpe_encode(v, text.substr(f.begin, f.end - f.begin), out);
      }
    }
  }
  if (add_special && v.add_eos) out.push_back(v.eos);
  return out;
}

std::string Tokenizer::token_to_piece(int32_t id, bool render_special) const {
  const Vocab& v = *vocab_;
  check_id(v, id);
  const std::string& text = v.text[id];
  switch (v.type[id]) {
    case TokenType::kControl:
    case TokenType::kUnknown:
      return render_special ? text : std::string();
    case TokenType::kUserDefined:
      return text;
    case TokenType::kUnused:
    case TokenType::kUndefined:
      return {};
    case TokenType::kByte:
      if (v.model == TokenizerModel::kSpm) return std::string(1, static_cast<char>(v.token_byte[id]));
      return {};
    case TokenType::kNormal:
      break;
  }
  std::string piece;
  if (v.model == TokenizerModel::kSpm) {
    piece.reserve(text.size());
    for (size_t k = 0; k < text.size();) {
      if (text.compare(k, kSpmSpace.size(), kSpmSpace) == 0) {
        piece += ' ';
        k += kSpmSpace.size();
      } else {
        piece += text[k++];
      }
    }
    return piece;
  }
  // Byte-level BPE: codepoints of the alphabet back to bytes; others (never produced by the
  // alphabet) pass through as UTF-8.
  for (const uint32_t cpt : utf8_decode(text)) {
    const int byte = cp_to_byte(cpt);
    if (byte >= 0) {
      piece += static_cast<char>(byte);
    } else {
      utf8_append(piece, cpt);
    }
  }
  return piece;
}

std::string Tokenizer::decode(std::span<const int32_t> ids, bool render_special) const {
  std::string out;
  bool strip_space = vocab_->add_space_prefix;
  for (const int32_t id : ids) {
    std::string piece = token_to_piece(id, render_special);
    if (strip_space && !piece.empty()) {
      if (piece[0] == ' ') piece.erase(0, 1);
      strip_space = false;
    }
    out += piece;
  }
  return out;
}

int32_t Tokenizer::n_vocab() const { return vocab_->n_vocab(); }
TokenizerModel Tokenizer::model() const { return vocab_->model; }
int32_t Tokenizer::bos_id() const { return vocab_->bos; }
int32_t Tokenizer::eos_id() const { return vocab_->eos; }
int32_t Tokenizer::unk_id() const { return vocab_->unk; }
int32_t Tokenizer::pad_id() const { return vocab_->pad; }
bool Tokenizer::add_bos() const { return vocab_->add_bos; }
bool Tokenizer::add_eos() const { return vocab_->add_eos; }
bool Tokenizer::add_space_prefix() const { return vocab_->add_space_prefix; }

bool Tokenizer::is_eog(int32_t id) const {
  return std::binary_search(vocab_->eog_ids.begin(), vocab_->eog_ids.end(), id);
}

const std::string& Tokenizer::token_text(int32_t id) const {
  check_id(*vocab_, id);
  return vocab_->text[id];
}

TokenType Tokenizer::token_type(int32_t id) const {
  check_id(*vocab_, id);
  return vocab_->type[id];
}

}  // namespace flashmem
