#include "chat/conversation.h"

#include "util/error.h"

namespace flashmem::chat {

Conversation::Conversation(Engine& engine, Sequence& sequence, const ChatTemplate& chat_template,
                           std::string system)
    : engine_(engine), sequence_(sequence), template_(chat_template), system_(std::move(system)) {
  reset();
}

void Conversation::reset() {
  messages_.clear();
  if (!system_.empty()) messages_.push_back({"system", system_});
  sequence_.reset();
  kv_text_.clear();
}

TurnStats Conversation::reply(const std::string& user_text, Sampler& sampler, int64_t max_tokens,
                              const std::function<bool(int32_t)>& on_token) {
  const Tokenizer& tokenizer = engine_.tokenizer();
  std::vector<ChatMessage> messages = messages_;
  messages.push_back({"user", user_text});
  const std::string prompt = template_.render(messages, /*add_generation_prompt=*/true);

  TurnStats stats;
  const bool extends = prompt.compare(0, kv_text_.size(), kv_text_) == 0;
  const std::vector<int32_t> ids =
      tokenize_chat_prompt(tokenizer, extends ? std::string_view(prompt).substr(kv_text_.size()) : prompt,
                           /*at_start=*/!extends || kv_text_.empty());
  if (ids.empty()) fail("the chat template added no text for the new message");
  const int64_t start = extends ? sequence_.n_past() : 0;
  const int64_t room = sequence_.capacity() - start - static_cast<int64_t>(ids.size());
  if (room < 1)
    fail("the conversation needs {} tokens but the context holds {} (start over, or use a larger context)",
         start + static_cast<int64_t>(ids.size()) + 1, sequence_.capacity());
  if (!extends) {
    sequence_.reset();
    kv_text_.clear();
    stats.re_prefilled = true;
  }
  stats.reused_tokens = sequence_.n_past();
  stats.prefilled_tokens = static_cast<int64_t>(ids.size());

  std::vector<int32_t> answer;
  GenerationRequest request;
  request.prompt = ids;
  request.max_tokens = std::min(max_tokens, room);
  request.is_end = [&](int32_t t) { return tokenizer.is_eog(t); };
  request.on_token = [&](int32_t t) {
    answer.push_back(t);
    return on_token(t);
  };
  try {
    stats.generation = generate(engine_, sequence_, sampler, request);
  } catch (const Error&) {
    // The KV may hold part of this turn: start the next one from an empty KV.
    sequence_.reset();
    kv_text_.clear();
    throw;
  }
  stats.generated_tokens = static_cast<int64_t>(answer.size());
  // generate() skips the forward pass of a last token it stopped after (max_tokens or a false
  // on_token); the KV must hold every token of the reply for the next turn to extend it.
  if (!answer.empty() && sequence_.n_past() < stats.reused_tokens + stats.prefilled_tokens + stats.generated_tokens)
    engine_.forward(sequence_, std::span(&answer.back(), 1), nullptr, false);

  std::string raw;  // the reply's text as its tokens spell it (a SentencePiece "▁Hi" is " Hi")
  for (int32_t t : answer) raw += tokenizer.token_to_piece(t);
  kv_text_ = prompt + raw;
  messages.push_back({"assistant", reply_content(messages, raw)});
  messages_ = std::move(messages);
  return stats;
}

std::string Conversation::reply_content(std::vector<ChatMessage> messages, const std::string& raw) const {
  // The reply as the message content under which the template renders the KV's text again, so
  // that the next turn extends it: the raw text, or without its leading whitespace (templates
  // that write "role: " before a message but "role:" as the generation prompt).
  const std::string stripped = raw.substr(std::min(raw.find_first_not_of(" \t\n"), raw.size()));
  messages.push_back({"assistant", raw});
  for (const std::string& content : {raw, stripped}) {
    messages.back().content = content;
    try {
      if (template_.render(messages, false).compare(0, kv_text_.size(), kv_text_) == 0) return content;
    } catch (const Error&) {  // a template that only renders with the generation prompt
    }
  }
  return stripped;
}

}  // namespace flashmem::chat
