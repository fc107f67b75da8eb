// Text <-> token ids, compatible with llama.cpp on GGUF vocabularies:
//   - SentencePiece-style (`tokenizer.ggml.model = "llama"`): score-driven pair merges over UTF-8
//     characters, spaces escaped to U+2581 and a leading one added, byte-token fallback;
//   - GPT-2 byte-level BPE (`tokenizer.ggml.model = "gpt2"`): a pre-tokenizer chosen by
//     `tokenizer.ggml.pre`, bytes mapped to printable codepoints, rank-ordered merges.
// A Tokenizer is immutable after construction and safe to use from several threads.
#pragma once
#include <cstdint>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace flashmem {

class GgufFile;
class GgufWriter;
struct Vocab;

// `tokenizer.ggml.token_type` values.
enum class TokenType : int32_t {
  kUndefined = 0,
  kNormal = 1,
  kUnknown = 2,
  kControl = 3,
  kUserDefined = 4,
  kUnused = 5,
  kByte = 6,
};

enum class TokenizerModel { kSpm, kBpe };

// Everything a Tokenizer is built from, as plain data (what from_gguf reads from the metadata).
// Unset optionals take llama.cpp's defaults for the model type.
struct VocabSpec {
  TokenizerModel model = TokenizerModel::kSpm;
  std::string pre = "default";           // BPE pre-tokenizer name (`tokenizer.ggml.pre`)
  std::vector<std::string> tokens;       // [n_vocab] token texts
  std::vector<float> scores;             // [n_vocab] or empty (all 0): SPM merge priority
  std::vector<int32_t> token_types;      // [n_vocab] TokenType values, or empty (all normal)
  std::vector<std::string> merges;       // BPE: "left right", rank = index
  std::optional<int64_t> bos_id, eos_id, unk_id, pad_id, eot_id;
  // Defaults: SPM adds BOS; BPE adds BOS where the pre-tokenizer says (llama-bpe, tekken).
  std::optional<bool> add_bos, add_eos;
  std::optional<bool> add_space_prefix;  // default: true for SPM, false for BPE
};

// Writes `spec` as the `tokenizer.ggml.*` keys (the inverse of Tokenizer::from_gguf's reading):
// model, pre (BPE), tokens, scores and token types when given, merges (BPE), the special ids
// and add_* flags that are set.
void add_vocab_to_gguf(const VocabSpec& spec, GgufWriter& writer);

class Tokenizer {
 public:
  // Validates and indexes the vocabulary. Throws Error on: empty vocabulary, scores/types of the
  // wrong length, an unknown token type, a special id outside [0, n_vocab), a malformed byte
  // token (type 6 not spelled <0xXX>), a merge without a separator or naming a non-token, an
  // unknown pre-tokenizer, add_bos/add_eos without the id to add.
  explicit Tokenizer(VocabSpec spec);
  // Reads the `tokenizer.ggml.*` keys; throws Error naming a missing or ill-typed key.
  static Tokenizer from_gguf(const GgufFile& file);

  // Text -> ids. add_special: BOS/EOS as the vocabulary's add_bos/add_eos flags say.
  // parse_special: the text of control tokens becomes their id (longest first); user-defined
  // tokens are always matched (as llama.cpp does); otherwise special text is plain text.
  std::vector<int32_t> encode(std::string_view text, bool add_special,
                              bool parse_special = false) const;

  // One token's bytes. Control/unknown tokens render empty unless render_special. SPM: U+2581
  // becomes a space and byte tokens their byte; BPE: codepoints map back to bytes.
  // Throws Error for an id outside [0, n_vocab).
  std::string token_to_piece(int32_t id, bool render_special = false) const;
  // Concatenated pieces; when a space prefix is added on encode, the first non-empty piece loses
  // one leading space, so decode(encode(s, ...)) == s for valid UTF-8 without special text.
  std::string decode(std::span<const int32_t> ids, bool render_special = false) const;

  int32_t n_vocab() const;
  TokenizerModel model() const;
  int32_t bos_id() const;  // -1 when the vocabulary has none
  int32_t eos_id() const;
  int32_t unk_id() const;
  int32_t pad_id() const;
  bool add_bos() const;
  bool add_eos() const;
  bool add_space_prefix() const;
  bool is_eog(int32_t id) const;  // end of generation: EOS, EOT and end-of-turn tokens
  const std::string& token_text(int32_t id) const;  // raw vocabulary text; throws on bad id
  TokenType token_type(int32_t id) const;

 private:
  std::shared_ptr<const Vocab> vocab_;  // immutable; shared by copies
};

}  // namespace flashmem
