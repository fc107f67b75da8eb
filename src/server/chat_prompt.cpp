#include "server/chat_prompt.h"

namespace flashmem::server {

std::vector<int32_t> render_chat_prompt(const Engine& engine, std::span<const ChatMessage> messages) {
  std::string text;
  for (const ChatMessage& m : messages) text += m.role + ": " + m.content + "\n";
  text += "assistant:";
  // Message text is the user's: special-token text in it stays plain text.
  return engine.tokenizer().encode(text, /*add_special=*/true, /*parse_special=*/false);
}

std::string chat_prompt_format(const Engine& engine) {
  return "role-prefixed fallback (\"role: content\" lines, then \"assistant:\"); the model's chat "
         "template is not used";
}

}  // namespace flashmem::server
