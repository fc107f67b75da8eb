#include "tokenizer/vocab.h"

#include <algorithm>

#include "gguf/gguf.h"
#include "util/error.h"

namespace flashmem {
namespace {

int hex_digit(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

// "<0xXX>" -> XX; -1 when the text is not exactly that form.
int parse_byte_token(std::string_view s) {
  if (s.size() != 6 || s.substr(0, 3) != "<0x" || s[5] != '>') return -1;
  const int hi = hex_digit(s[3]), lo = hex_digit(s[4]);
  return hi < 0 || lo < 0 ? -1 : hi * 16 + lo;
}

int32_t checked_id(const std::optional<int64_t>& id, int32_t fallback, int32_t n_vocab,
                   std::string_view what) {
  if (!id) return fallback < n_vocab ? fallback : -1;
  if (*id < 0 || *id >= n_vocab) {
    fail("tokenizer: {} token id {} is outside the vocabulary (size {})", what, *id, n_vocab);
  }
  return static_cast<int32_t>(*id);
}

// Texts llama.cpp treats as end-of-generation besides EOS/EOT (chat templates' turn ends).
constexpr std::string_view kEogTexts[] = {
    "<|eot_id|>", "<|im_end|>",    "<|end|>",         "<end_of_turn>", "<|endoftext|>",
    "<|eom_id|>", "<EOT>",         "<|end_of_text|>", "<|return|>",    "<|call|>",
};

}  // namespace

Vocab build_vocab(VocabSpec spec) {
  Vocab v;
  v.model = spec.model;
  const size_t n = spec.tokens.size();
  if (n == 0) fail("tokenizer: the vocabulary is empty");
  if (n > static_cast<size_t>(INT32_MAX)) fail("tokenizer: vocabulary too large ({})", n);
  const auto n_vocab = static_cast<int32_t>(n);
  if (!spec.scores.empty() && spec.scores.size() != n) {
    fail("tokenizer: {} scores for {} tokens", spec.scores.size(), n);
  }
  if (!spec.token_types.empty() && spec.token_types.size() != n) {
    fail("tokenizer: {} token types for {} tokens", spec.token_types.size(), n);
  }

  v.text = std::move(spec.tokens);
  v.score = spec.scores.empty() ? std::vector<float>(n, 0.0f) : std::move(spec.scores);
  v.type.assign(n, TokenType::kNormal);
  v.byte_token.assign(256, -1);
  v.token_byte.assign(n, -1);
  v.token_to_id.reserve(n);
  for (int32_t id = 0; id < n_vocab; ++id) {
    if (!spec.token_types.empty()) {
      const int32_t t = spec.token_types[id];
      if (t < 0 || t > static_cast<int32_t>(TokenType::kByte)) {
        fail("tokenizer: token {} has unknown type {}", id, t);
      }
      v.type[id] = static_cast<TokenType>(t);
    }
    // As llama.cpp: an empty text gets a placeholder so it can neither match nor vanish.
    if (v.text[id].empty()) v.text[id] = fmt::format("[EMPTY_{}]", id);
    v.token_to_id[v.text[id]] = id;
    if (v.type[id] == TokenType::kByte) {
      const int byte = parse_byte_token(v.text[id]);
      if (byte < 0) fail("tokenizer: byte token {} has malformed text '{}'", id, v.text[id]);
      v.token_byte[id] = static_cast<int16_t>(byte);
      if (v.byte_token[byte] < 0) v.byte_token[byte] = id;
    }
  }

  const bool spm = v.model == TokenizerModel::kSpm;
  if (!spm) {
    v.pre = PreTokenizer::from_name(spec.pre);
    v.merge_rank.reserve(spec.merges.size());
    for (size_t rank = 0; rank < spec.merges.size(); ++rank) {
      const std::string& merge = spec.merges[rank];
      const size_t sep = merge.size() > 1 ? merge.find(' ', 1) : std::string::npos;
      if (sep == std::string::npos) fail("tokenizer: merge {} ('{}') has no separator", rank, merge);
      const std::string_view all(merge);
      const int32_t left = v.find(all.substr(0, sep));
      const int32_t right = v.find(all.substr(sep + 1));
      if (left < 0 || right < 0) {
        fail("tokenizer: merge {} ('{}') names a token that is not in the vocabulary", rank,
             merge);
      }
      v.merge_rank.try_emplace(Vocab::pair_key(left, right), static_cast<int32_t>(rank));
    }
  }

  // llama.cpp's defaults: SPM <unk>=0 <s>=1 </s>=2; GPT-2 BPE uses 11 for both BOS and EOS
  // (none for BOS where the pre-tokenizer says so).
  const int32_t default_bos = spm ? 1 : (v.pre->has_default_bos() ? 11 : -1);
  v.bos = checked_id(spec.bos_id, default_bos, n_vocab, "BOS");
  v.eos = checked_id(spec.eos_id, spm ? 2 : 11, n_vocab, "EOS");
  v.unk = checked_id(spec.unk_id, spm ? 0 : -1, n_vocab, "unknown");
  v.pad = checked_id(spec.pad_id, -1, n_vocab, "padding");
  v.eot = checked_id(spec.eot_id, -1, n_vocab, "EOT");
  v.add_bos = spec.add_bos.value_or(spm || v.pre->add_bos());
  v.add_eos = spec.add_eos.value_or(false);
  v.add_space_prefix = spec.add_space_prefix.value_or(spm);
  if (v.add_bos && v.bos < 0) fail("tokenizer: add_bos_token is set but there is no BOS id");
  if (v.add_eos && v.eos < 0) fail("tokenizer: add_eos_token is set but there is no EOS id");

  for (int32_t id = 0; id < n_vocab; ++id) {
    const TokenType t = v.type[id];
    if (t == TokenType::kControl || t == TokenType::kUserDefined || t == TokenType::kUnknown) {
      v.special_tokens.push_back(id);
    }
  }
  std::stable_sort(v.special_tokens.begin(), v.special_tokens.end(), [&](int32_t a, int32_t b) {
    return v.text[a].size() > v.text[b].size();
  });

  if (v.eos >= 0) v.eog_ids.push_back(v.eos);
  if (v.eot >= 0) v.eog_ids.push_back(v.eot);
  for (const std::string_view s : kEogTexts) {
    if (const int32_t id = v.find(s); id >= 0) v.eog_ids.push_back(id);
  }
  std::sort(v.eog_ids.begin(), v.eog_ids.end());
  v.eog_ids.erase(std::unique(v.eog_ids.begin(), v.eog_ids.end()), v.eog_ids.end());
  return v;
}

VocabSpec read_vocab_spec(const GgufFile& file) {
  VocabSpec spec;
  const std::string model = file.get_string("tokenizer.ggml.model");
  if (model == "llama") {
    spec.model = TokenizerModel::kSpm;
  } else if (model == "gpt2") {
    spec.model = TokenizerModel::kBpe;
  } else {
    fail("{}: unsupported tokenizer.ggml.model '{}' (supported: llama, gpt2)", file.name(), model);
  }
  spec.tokens = file.get_string_array("tokenizer.ggml.tokens");
  if (file.has("tokenizer.ggml.scores")) spec.scores = file.get_f32_array("tokenizer.ggml.scores");
  if (file.has("tokenizer.ggml.token_type")) {
    for (const int64_t t : file.get_int_array("tokenizer.ggml.token_type")) {
      if (t < INT32_MIN || t > INT32_MAX) fail("{}: token type {} out of range", file.name(), t);
      spec.token_types.push_back(static_cast<int32_t>(t));
    }
  }
  if (spec.model == TokenizerModel::kBpe) {
    spec.pre = file.get_string_opt("tokenizer.ggml.pre").value_or("default");
    spec.merges = file.get_string_array("tokenizer.ggml.merges");
  }
  spec.bos_id = file.get_int_opt("tokenizer.ggml.bos_token_id");
  spec.eos_id = file.get_int_opt("tokenizer.ggml.eos_token_id");
  spec.unk_id = file.get_int_opt("tokenizer.ggml.unknown_token_id");
  spec.pad_id = file.get_int_opt("tokenizer.ggml.padding_token_id");
  spec.eot_id = file.get_int_opt("tokenizer.ggml.eot_token_id");
  spec.add_bos = file.get_bool_opt("tokenizer.ggml.add_bos_token");
  spec.add_eos = file.get_bool_opt("tokenizer.ggml.add_eos_token");
  spec.add_space_prefix = file.get_bool_opt("tokenizer.ggml.add_space_prefix");
  return spec;
}

void add_vocab_to_gguf(const VocabSpec& spec, GgufWriter& w) {
  const bool bpe = spec.model == TokenizerModel::kBpe;
  w.set_string("tokenizer.ggml.model", bpe ? "gpt2" : "llama");
  if (bpe) w.set_string("tokenizer.ggml.pre", spec.pre);
  w.set_string_array("tokenizer.ggml.tokens", spec.tokens);
  if (!spec.scores.empty()) w.set_f32_array("tokenizer.ggml.scores", spec.scores);
  if (!spec.token_types.empty()) w.set_i32_array("tokenizer.ggml.token_type", spec.token_types);
  if (bpe) w.set_string_array("tokenizer.ggml.merges", spec.merges);
  const std::pair<const char*, const std::optional<int64_t>&> ids[] = {
      {"tokenizer.ggml.bos_token_id", spec.bos_id},
      {"tokenizer.ggml.eos_token_id", spec.eos_id},
      {"tokenizer.ggml.unknown_token_id", spec.unk_id},
      {"tokenizer.ggml.padding_token_id", spec.pad_id},
      {"tokenizer.ggml.eot_token_id", spec.eot_id},
  };
  for (const auto& [key, id] : ids) {
    if (id) w.set_u32(key, static_cast<uint32_t>(*id));
  }
  if (spec.add_bos) w.set_bool("tokenizer.ggml.add_bos_token", *spec.add_bos);
  if (spec.add_eos) w.set_bool("tokenizer.ggml.add_eos_token", *spec.add_eos);
  if (spec.add_space_prefix) w.set_bool("tokenizer.ggml.add_space_prefix", *spec.add_space_prefix);
}

}  // namespace flashmem
