// GPT-2 byte-level BPE (llama.cpp's BPE tokenizer): each pre-token's bytes are mapped to printable
// codepoints, then adjacent symbols are merged lowest merge rank first (ties: leftmost) until no
// listed pair remains. Final symbols that are not tokens fall back to one-byte tokens. With the
// pre-tokenizer's ignore_merges (Llama 3), a pre-token that is itself a token is taken whole.
// Cost: O(m log m) per pre-token of m bytes; merge ranks are a hash lookup on id pairs.
#include <queue>

#include "tokenizer/unicode.h"
#include "tokenizer/vocab.h"

namespace flashmem {
namespace {

struct Symbol {
  uint32_t start;  // byte offset in the mapped word
  uint32_t len;    // 0 once merged into its left neighbour
  int32_t id;      // token id of the symbol's text, -1 if it is not a token
  int32_t prev, next;
};

struct Bigram {
  int32_t rank;
  int32_t left, right;
  uint32_t left_len, right_len;  // at queue time: detects stale entries
};

struct BigramOrder {
  // std::priority_queue pops the "largest": lowest rank, then the lowest left index.
  bool operator()(const Bigram& a, const Bigram& b) const {
    return a.rank > b.rank || (a.rank == b.rank && a.left > b.left);
  }
};

void bpe_word(const Vocab& vocab, const std::string& word, std::vector<Symbol>& symbols,
              std::vector<int32_t>& out) {
  symbols.clear();
  for (size_t offset = 0; offset < word.size();) {
    const size_t len =
        std::min(utf8_seq_len(static_cast<uint8_t>(word[offset])), word.size() - offset);
    const auto index = static_cast<int32_t>(symbols.size());
    symbols.push_back({static_cast<uint32_t>(offset), static_cast<uint32_t>(len),
                       vocab.find(std::string_view(word).substr(offset, len)), index - 1,
                       offset + len == word.size() ? -1 : index + 1});
    offset += len;
  }
  std::priority_queue<Bigram, std::vector<Bigram>, BigramOrder> queue;
  auto try_add = [&](int32_t left, int32_t right) {
    if (left < 0 || right < 0) return;
    const Symbol& l = symbols[left];
    const Symbol& r = symbols[right];
    if (l.id < 0 || r.id < 0) return;  // every merge names two tokens (checked on load)
    const auto it = vocab.merge_rank.find(Vocab::pair_key(l.id, r.id));
    if (it == vocab.merge_rank.end()) return;
    queue.push({it->second, left, right, l.len, r.len});
  };
  for (size_t i = 1; i < symbols.size(); ++i) {
    try_add(static_cast<int32_t>(i - 1), static_cast<int32_t>(i));
  }
  while (!queue.empty()) {
    const Bigram b = queue.top();
    queue.pop();
    Symbol& left = symbols[b.left];
    Symbol& right = symbols[b.right];
    if (left.len != b.left_len || right.len != b.right_len || right.len == 0) continue;
    left.len += right.len;
    right.len = 0;
    left.id = vocab.find(std::string_view(word).substr(left.start, left.len));
    left.next = right.next;
    if (right.next >= 0) symbols[right.next].prev = b.left;
    try_add(left.prev, b.left);
    try_add(b.left, left.next);
  }
  for (int32_t i = symbols.empty() ? -1 : 0; i != -1; i = symbols[i].next) {
    const Symbol& s = symbols[i];
    if (s.id >= 0) {
      out.push_back(s.id);
      continue;
    }
    for (size_t k = s.start; k < s.start + s.len; ++k) {
      if (const int32_t id = vocab.find(std::string_view(word).substr(k, 1)); id >= 0) {
        out.push_back(id);
      }
    }
  }
}

}  // namespace

void bpe_encode(const Vocab& vocab, std::string_view text, std::vector<int32_t>& out) {
  std::vector<Symbol> symbols;
  std::string word;
  const PreTokenizer& pre = *vocab.pre;
  for (const std::string& piece : pre.split(text)) {
    word.clear();
    for (const char c : piece) utf8_append(word, byte_to_cp(static_cast<uint8_t>(c)));
    if (pre.ignore_merges()) {
      if (const int32_t id = vocab.find(word); id >= 0) {
        out.push_back(id);
        continue;
      }
    }
    bpe_word(vocab, word, symbols, out);
  }
}

}  // namespace flashmem
