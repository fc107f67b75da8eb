// A chat's messages as the prompt tokens of the served model. This is the one place chat
// prompts are made: today a plain role-prefixed fallback ("role: content" lines, then
// "assistant:"), not the model's own chat template; chat_prompt_format() says so at start-up, in
// /health and in /v1/models.
#pragma once
#include <cstdint>
#include <span>
#include <string>
#include <vector>

#include "flashmem/engine.h"

namespace flashmem::server {

struct ChatMessage {
  std::string role;     // system | developer | user | assistant | tool
  std::string content;  // the message's text (text parts joined)
};

// The prompt of `messages` (non-empty) for `engine`'s model, ending where the assistant's reply
// begins; BOS/EOS as the vocabulary adds them. Thread-safe (reads the engine's immutable model
// and tokenizer only).
std::vector<int32_t> render_chat_prompt(const Engine& engine, std::span<const ChatMessage> messages);

// How render_chat_prompt makes prompts for this engine's model (one line for people).
std::string chat_prompt_format(const Engine& engine);

}  // namespace flashmem::server
