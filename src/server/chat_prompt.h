// A chat's messages as the prompt tokens of the served model: the model's own chat template
// (GGUF `tokenizer.chat_template`, rendered by chat::ChatTemplate as Hugging Face's
// apply_chat_template renders it), or — for a file without one — the documented role-prefixed
// fallback ("role: content" lines, then "assistant:"). format() says which, at start-up, in
// /health and in /v1/models. This is the one place the server makes chat prompts.
#pragma once
#include <cstdint>
#include <span>
#include <string>
#include <vector>

#include "chat/chat_template.h"
#include "flashmem/engine.h"

namespace flashmem::server {

using ChatMessage = chat::ChatMessage;  // role: system | developer | user | assistant | tool

class ChatPrompts {
 public:
  // Parses the model's template once. Throws Error (naming the template's hash and line) when
  // the file's template does not parse; `engine` must outlive this object.
  explicit ChatPrompts(const Engine& engine);

  // The prompt of `messages` (non-empty), ending where the assistant's reply begins: special-token
  // text the template writes is parsed (as llama.cpp's server does), exactly one BOS. A template
  // that refuses these messages (its raise_exception, e.g. a role order it does not accept) is a
  // 400 naming `messages`. Thread-safe.
  std::vector<int32_t> render(std::span<const ChatMessage> messages) const;

  // How prompts are made, one line for people: the template's hash, or the fallback.
  std::string format() const;

 private:
  const Engine& engine_;
  chat::ChatTemplate template_;
};

}  // namespace flashmem::server
