// A model's chat template: the Jinja template of its GGUF `tokenizer.chat_template`, rendered as
// Hugging Face's apply_chat_template renders it (chat/jinja.h), with `messages`,
// `add_generation_prompt`, `bos_token` and `eos_token` set. Used by `flashmem chat`,
// `flashmem chat-template` and the server; depends on nothing of the CLI.
//
// A file without a template gets the fallback (is_fallback()), kFallbackChatTemplate: one line
// "role: content" per message and "assistant:" as the generation prompt.
//
// Immutable after construction; render() may run on several threads at once.
#pragma once
#include <cstdint>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

namespace flashmem {
class GgufFile;
class Tokenizer;
}  // namespace flashmem

namespace flashmem::jinja {
class Template;
}

namespace flashmem::chat {

struct ChatMessage {
  std::string role;     // "system", "user", "assistant", ...
  std::string content;
};

// The template used when a model file has none (documented in README "Chat").
extern const char* const kFallbackChatTemplate;

class ChatTemplate {
 public:
  // Parses `source`; Error "chat template <hash>: line L, column C: ..." on a syntax error or an
  // unsupported construct. bos_token/eos_token: the texts the template sees (may be empty).
  ChatTemplate(const std::string& source, std::string bos_token, std::string eos_token);
  // The fallback template with these BOS/EOS texts.
  static ChatTemplate fallback(std::string bos_token, std::string eos_token);
  // The file's `tokenizer.chat_template` (the fallback when it has none), with the texts of the
  // vocabulary's BOS and EOS tokens. Error when the key is not a string or does not parse.
  static ChatTemplate from_gguf(const GgufFile& file, const Tokenizer& tokenizer);

  // The prompt text for `messages`; add_generation_prompt appends what opens the assistant's
  // turn. Error (naming the template hash and the line) when the template fails on these
  // messages, e.g. its own raise_exception for a role order it does not accept.
  std::string render(std::span<const ChatMessage> messages, bool add_generation_prompt) const;
  // The same with messages in OpenAI's JSON form (any fields: tool_calls, ...) and extra
  // variables (`tools`, `enable_thinking`, ...) from the object `extra` (null: none).
  std::string render_json(const nlohmann::ordered_json& messages, bool add_generation_prompt,
                          const nlohmann::ordered_json& extra = nullptr) const;

  bool is_fallback() const { return fallback_; }
  const std::string& source() const { return source_; }
  // The first 12 hex digits of the template's SHA-256 (names it in errors and in `chat-template`).
  const std::string& hash() const { return hash_; }
  const std::string& bos_token() const { return bos_; }
  const std::string& eos_token() const { return eos_; }

 private:
  std::shared_ptr<const jinja::Template> template_;
  std::string source_, hash_, bos_, eos_;
  bool fallback_ = false;
};

// Token ids of (part of) a rendered prompt: special-token text parsed (templates write
// <|im_start|>, [INST], ... as text), no BOS/EOS added, except that `at_start` (the text opens
// the sequence) puts one BOS in front when the vocabulary adds BOS and the template did not
// write it (llama.cpp's rule: exactly one BOS either way).
std::vector<int32_t> tokenize_chat_prompt(const Tokenizer& tokenizer, std::string_view text, bool at_start);

// The chat template of a Hugging Face tokenizer_config.json text, as llama.cpp's
// convert_hf_to_gguf.py takes it for `tokenizer.chat_template`: the "chat_template" string, or
// from a list of {"name", "template"} the one named "default". nullopt when there is none;
// Error on malformed JSON.
std::optional<std::string> chat_template_from_hf_config(std::string_view tokenizer_config_json);

// Messages from JSON: an array of {"role": str, "content": str}. Error naming the bad element.
std::vector<ChatMessage> messages_from_json(const nlohmann::ordered_json& messages);

}  // namespace flashmem::chat
