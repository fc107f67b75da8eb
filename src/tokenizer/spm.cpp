// SentencePiece-style BPE (llama.cpp's SPM tokenizer): start from UTF-8 characters, repeatedly
// merge the adjacent pair whose concatenation is a vocabulary token with the highest score
// (ties: leftmost), then emit each final piece's id or, for pieces that are not tokens, one
// byte token per byte. Cost: O(n log n) in the text length (one heap over adjacent pairs).
#include <queue>

#include "tokenizer/unicode.h"
#include "tokenizer/vocab.h"

namespace flashmem {
namespace {

struct Symbol {
  uint32_t start;  // byte offset in the text
  uint32_t len;    // 0 once merged into its left neighbour
  int32_t prev, next;
};

struct Bigram {
  float score;
  int32_t left, right;
  uint32_t len;  // left.len + right.len when queued: detects stale entries
};

struct BigramOrder {
  // std::priority_queue pops the "largest": highest score, then the lowest left index.
  bool operator()(const Bigram& a, const Bigram& b) const {
    return a.score < b.score || (a.score == b.score && a.left > b.left);
  }
};

}  // namespace

void spm_encode(const Vocab& vocab, std::string_view text, std::vector<int32_t>& out) {
  if (text.empty()) return;
  std::vector<Symbol> symbols;
  symbols.reserve(text.size());
  for (size_t offset = 0; offset < text.size();) {
    const size_t len =
        std::min(utf8_seq_len(static_cast<uint8_t>(text[offset])), text.size() - offset);
    const auto index = static_cast<int32_t>(symbols.size());
    symbols.push_back({static_cast<uint32_t>(offset), static_cast<uint32_t>(len), index - 1,
                       offset + len == text.size() ? -1 : index + 1});
    offset += len;
  }

  std::vector<Bigram> storage;
  storage.reserve(symbols.size());
  std::priority_queue<Bigram, std::vector<Bigram>, BigramOrder> queue(BigramOrder{},
                                                                      std::move(storage));
  auto try_add = [&](int32_t left, int32_t right) {
    if (left < 0 || right < 0) return;
    const uint32_t len = symbols[left].len + symbols[right].len;
    const int32_t id = vocab.find(text.substr(symbols[left].start, len));
    if (id < 0) return;
    queue.push({vocab.score[id], left, right, len});
  };
  for (size_t i = 1; i < symbols.size(); ++i) {
    try_add(static_cast<int32_t>(i - 1), static_cast<int32_t>(i));
  }

  while (!queue.empty()) {
    const Bigram b = queue.top();
    queue.pop();
    Symbol& left = symbols[b.left];
    Symbol& right = symbols[b.right];
    if (left.len == 0 || right.len == 0 || left.len + right.len != b.len) continue;
    left.len += right.len;
    right.len = 0;
    left.next = right.next;
    if (right.next >= 0) symbols[right.next].prev = b.left;
    try_add(left.prev, b.left);
    try_add(b.left, left.next);
  }

  for (int32_t i = 0; i != -1; i = symbols[i].next) {
    const Symbol& s = symbols[i];
    const std::string_view piece = text.substr(s.start, s.len);
    if (const int32_t id = vocab.find(piece); id >= 0) {
      out.push_back(id);
      continue;
    }
    // Not a token (only single characters reach here): fall back to byte tokens, then to the
    // byte as a one-character token, then to <unk>.
    for (const char c : piece) {
      int32_t id = vocab.byte_token[static_cast<uint8_t>(c)];
      if (id < 0) id = vocab.find(std::string_view(&c, 1));
      if (id < 0) id = vocab.unk;
      if (id >= 0) out.push_back(id);
    }
  }
}

}  // namespace flashmem
