#include "server/chat_prompt.h"

#include "server/api_error.h"
#include "util/error.h"

namespace flashmem::server {

ChatPrompts::ChatPrompts(const Engine& engine)
    : engine_(engine), template_(chat::ChatTemplate::from_gguf(engine.model().file(), engine.tokenizer())) {}

std::vector<int32_t> ChatPrompts::render(std::span<const ChatMessage> messages) const {
  std::string text;
  try {
    text = template_.render(messages, /*add_generation_prompt=*/true);
  } catch (const Error& e) {
    fail_request("messages", "the model's chat template refused these messages: {}", e.what());
  }
  return chat::tokenize_chat_prompt(engine_.tokenizer(), text, /*at_start=*/true);
}

std::string ChatPrompts::format() const {
  if (template_.is_fallback())
    return "role-prefixed fallback (\"role: content\" lines, then \"assistant:\"): the model file has no "
           "chat template";
  return "the model's chat template (tokenizer.chat_template, sha256 " + template_.hash() + ")";
}

}  // namespace flashmem::server
