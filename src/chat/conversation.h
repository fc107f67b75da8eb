// One chat on one caller-owned Sequence: the message history, rendered with the model's chat
// template every turn, of which only the tokens the sequence's KV does not hold yet are
// prefilled. The KV persists across turns: a turn's new tokens are the text the template adds
// after what the KV already represents (the previous prompt and the reply's tokens as sampled),
// i.e. the end of the last assistant turn, the new user message and the generation prompt.
// When a template re-renders earlier turns differently (e.g. trims a reply or drops its
// <think> part), the rendering no longer extends the KV's text: the sequence is reset and the
// whole conversation prefilled again (TurnStats::re_prefilled says so).
//
// Used by `flashmem chat`; one thread at a time, like the Engine and Sequence it drives.
#pragma once
#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "chat/chat_template.h"
#include "engine/generate.h"
#include "flashmem/engine.h"
#include "model/sampler.h"

namespace flashmem::chat {

struct TurnStats {
  int64_t reused_tokens = 0;     // KV positions kept from earlier turns
  int64_t prefilled_tokens = 0;  // new prompt tokens of this turn
  int64_t generated_tokens = 0;
  bool re_prefilled = false;     // the history was rendered differently: prefilled from scratch
  GenerationStats generation;
};

class Conversation {
 public:
  // `system`: a system message opening the conversation (empty: none). The engine, sequence and
  // template must outlive the conversation; the sequence should be empty.
  Conversation(Engine& engine, Sequence& sequence, const ChatTemplate& chat_template, std::string system);

  // Adds the user's message, prefills the new tokens, generates the reply (at most max_tokens,
  // fewer when the context ends sooner; stops at an end-of-generation token) calling on_token
  // with each token as it is sampled (return false to stop), and records the reply.
  // Throws Error, keeping the history as it was, when the template fails on the messages or the
  // new tokens do not fit the sequence's context (nothing was decoded then); an Error of the
  // engine while decoding also empties the KV (the next turn prefills the whole history).
  TurnStats reply(const std::string& user_text, Sampler& sampler, int64_t max_tokens,
                  const std::function<bool(int32_t)>& on_token);

  // Back to the system message alone, with an empty KV.
  void reset();

  const std::vector<ChatMessage>& messages() const { return messages_; }

 private:
  std::string reply_content(std::vector<ChatMessage> messages, const std::string& raw) const;

  Engine& engine_;
  Sequence& sequence_;
  const ChatTemplate& template_;
  std::string system_;
  std::vector<ChatMessage> messages_;
  std::string kv_text_;  // the text the sequence's KV positions hold, as the template renders it
};

}  // namespace flashmem::chat
