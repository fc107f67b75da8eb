// Internal: the validated, indexed vocabulary shared by the SPM and BPE encoders.
#pragma once
#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "tokenizer/pretokenize.h"
#include "tokenizer/tokenizer.h"

namespace flashmem {

// Lets the token map be queried with string_view (no allocation per lookup).
struct StringHash {
  using is_transparent = void;
  size_t operator()(std::string_view s) const { return std::hash<std::string_view>{}(s); }
};
using TokenMap = std::unordered_map<std::string, int32_t, StringHash, std::equal_to<>>;

struct Vocab {
  TokenizerModel model = TokenizerModel::kSpm;
  std::optional<PreTokenizer> pre;  // BPE only

  std::vector<std::string> text;  // [n_vocab]
  std::vector<float> score;       // [n_vocab]
  std::vector<TokenType> type;    // [n_vocab]
  TokenMap token_to_id;           // text -> id (the last id wins for duplicate texts)

  // SPM: id of the byte token <0xXX> for each byte, -1 if absent. [256]
  std::vector<int32_t> byte_token;
  // Byte value of each byte-type token, -1 for other tokens. [n_vocab]
  std::vector<int16_t> token_byte;

  // BPE: (left id << 32 | right id) -> merge rank (the first listing wins).
  std::unordered_map<uint64_t, int32_t> merge_rank;

  // Control, user-defined and unknown tokens, longest text first: matched in the raw text
  // before the model's encoder sees it.
  std::vector<int32_t> special_tokens;
  std::vector<int32_t> eog_ids;  // sorted

  int32_t bos = -1, eos = -1, unk = -1, pad = -1, eot = -1;
  bool add_bos = false, add_eos = false, add_space_prefix = false;

  int32_t n_vocab() const { return static_cast<int32_t>(text.size()); }
  int32_t find(std::string_view s) const {
    const auto it = token_to_id.find(s);
    return it == token_to_id.end() ? -1 : it->second;
  }
  static uint64_t pair_key(int32_t left, int32_t right) {
    return (static_cast<uint64_t>(static_cast<uint32_t>(left)) << 32) |
           static_cast<uint32_t>(right);
  }
};

class GgufFile;
// Reads the tokenizer.ggml.* keys into a VocabSpec (throws Error naming a missing/ill-typed key).
VocabSpec read_vocab_spec(const GgufFile& file);

// Builds and validates a Vocab (throws Error, see Tokenizer's constructor).
Vocab build_vocab(VocabSpec spec);

// Encoders for one run of plain text (no special-token handling). Append to `out`.
// spm_encode expects the text already whitespace-escaped (' ' -> U+2581, prefix added).
void spm_encode(const Vocab& vocab, std::string_view text, std::vector<int32_t>& out);
void bpe_encode(const Vocab& vocab, std::string_view text, std::vector<int32_t>& out);

}  // namespace flashmem
