#include "chat/chat_template.h"

#include "chat/jinja.h"
#include "gguf/gguf.h"
#include "tokenizer/tokenizer.h"
#include "util/error.h"
#include "util/sha256.h"

namespace flashmem::chat {

const char* const kFallbackChatTemplate =
    "{%- for message in messages %}{{ message.role }}: {{ message.content }}\n"
    "{% endfor %}{% if add_generation_prompt %}assistant:{% endif %}";

namespace {

// 12 hex digits (48 bits) tell templates apart in a message without drowning it.
constexpr size_t kHashDigits = 12;

}  // namespace

ChatTemplate::ChatTemplate(const std::string& source, std::string bos_token, std::string eos_token)
    : source_(source),
      hash_(sha256_hex(source.data(), source.size()).substr(0, kHashDigits)),
      bos_(std::move(bos_token)),
      eos_(std::move(eos_token)) {
  try {
    template_ = std::make_shared<const jinja::Template>(jinja::Template::parse(source));
  } catch (const Error& e) {
    fail("chat template {}: {}", hash_, e.what());
  }
}

ChatTemplate ChatTemplate::fallback(std::string bos_token, std::string eos_token) {
  ChatTemplate t(kFallbackChatTemplate, std::move(bos_token), std::move(eos_token));
  t.fallback_ = true;
  return t;
}

ChatTemplate ChatTemplate::from_gguf(const GgufFile& file, const Tokenizer& tokenizer) {
  std::string bos = tokenizer.bos_id() >= 0 ? tokenizer.token_text(tokenizer.bos_id()) : "";
  std::string eos = tokenizer.eos_id() >= 0 ? tokenizer.token_text(tokenizer.eos_id()) : "";
  const std::optional<std::string> source = file.get_string_opt("tokenizer.chat_template");
  if (!source) return fallback(std::move(bos), std::move(eos));
  return ChatTemplate(*source, std::move(bos), std::move(eos));
}

std::string ChatTemplate::render(std::span<const ChatMessage> messages, bool add_generation_prompt) const {
  nlohmann::ordered_json list = nlohmann::ordered_json::array();
  for (const ChatMessage& m : messages) list.push_back({{"role", m.role}, {"content", m.content}});
  return render_json(list, add_generation_prompt);
}

std::string ChatTemplate::render_json(const nlohmann::ordered_json& messages, bool add_generation_prompt,
                                      const nlohmann::ordered_json& extra) const {
  if (!messages.is_array()) fail("chat messages must be a JSON array");
  if (!extra.is_null() && !extra.is_object()) fail("chat template variables must be a JSON object");
  try {
    jinja::Dict vars;
    if (extra.is_object())
      for (const auto& [key, value] : extra.items()) vars.set(key, jinja::from_json(value));
    vars.set("messages", jinja::from_json(messages));
    vars.set("add_generation_prompt", jinja::Value::boolean(add_generation_prompt));
    vars.set("bos_token", jinja::Value::string(bos_));
    vars.set("eos_token", jinja::Value::string(eos_));
    return template_->render(vars);
  } catch (const Error& e) {
    fail("chat template {}: {}", hash_, e.what());
  }
}

std::vector<ChatMessage> messages_from_json(const nlohmann::ordered_json& messages) {
  if (!messages.is_array()) fail("chat messages must be a JSON array of {{\"role\", \"content\"}} objects");
  std::vector<ChatMessage> out;
  for (size_t k = 0; k < messages.size(); ++k) {
    const auto& m = messages[k];
    if (!m.is_object() || !m.contains("role") || !m["role"].is_string() || !m.contains("content") ||
        !m["content"].is_string())
      fail("chat message {} must be an object with string \"role\" and \"content\"", k);
    out.push_back({m["role"].get<std::string>(), m["content"].get<std::string>()});
  }
  return out;
}

std::vector<int32_t> tokenize_chat_prompt(const Tokenizer& tokenizer, std::string_view text, bool at_start) {
  std::vector<int32_t> ids = tokenizer.encode(text, /*add_special=*/false, /*parse_special=*/true);
  if (at_start && tokenizer.add_bos() && (ids.empty() || ids.front() != tokenizer.bos_id()))
    ids.insert(ids.begin(), tokenizer.bos_id());
  return ids;
}

std::optional<std::string> chat_template_from_hf_config(std::string_view tokenizer_config_json) {
  nlohmann::ordered_json config;
  try {
    config = nlohmann::ordered_json::parse(tokenizer_config_json);
  } catch (const nlohmann::json::exception& e) {
    fail("tokenizer_config.json: {}", e.what());
  }
  if (!config.is_object() || !config.contains("chat_template")) return std::nullopt;
  const auto& t = config["chat_template"];
  if (t.is_string()) return t.get<std::string>();
  if (t.is_array())
    for (const auto& named : t)
      if (named.is_object() && named.value("name", "") == "default" && named.contains("template") &&
          named["template"].is_string())
        return named["template"].get<std::string>();
  return std::nullopt;
}

}  // namespace flashmem::chat
