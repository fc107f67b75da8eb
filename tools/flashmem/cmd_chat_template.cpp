// `flashmem chat-template -m MODEL [--messages FILE.json] [--template FILE.jinja]
//  [--no-generation-prompt]`: prints the prompt a model's chat template (chat/chat_template.h)
// makes of a conversation, byte for byte, with no newline added. Reads only the model's
// vocabulary and metadata, not its weights.
#include <fmt/format.h>

#include <cstdio>

#include "chat/chat_template.h"
#include "commands.h"
#include "common.h"
#include "gguf/gguf.h"
#include "tokenizer/tokenizer.h"
#include "util/error.h"
#include "util/read_file.h"

namespace flashmem::cli {
namespace {

struct ChatTemplateArgs {
  std::string model, messages_file, template_file;
  bool no_generation_prompt = false;
};

// Without --messages: a system message and one user turn.
const char* const kExampleMessages =
    R"([{"role": "system", "content": "You are a helpful assistant."},
        {"role": "user", "content": "Hello!"}])";

void run_chat_template(const ChatTemplateArgs& a) {
  const GgufFile file = GgufFile::open(a.model);
  const Tokenizer tokenizer = Tokenizer::from_gguf(file);
  chat::ChatTemplate model_template = chat::ChatTemplate::from_gguf(file, tokenizer);
  const chat::ChatTemplate tmpl =
      a.template_file.empty()
          ? model_template
          : chat::ChatTemplate(read_file(a.template_file, "chat template"), model_template.bos_token(),
                               model_template.eos_token());
  const std::string messages_text =
      a.messages_file.empty() ? std::string(kExampleMessages) : read_file(a.messages_file, "messages file");
  nlohmann::ordered_json messages;
  try {
    messages = nlohmann::ordered_json::parse(messages_text);
  } catch (const nlohmann::json::exception& e) {
    fail("{}: not JSON: {}", a.messages_file.empty() ? "messages" : a.messages_file, e.what());
  }
  const std::string prompt = tmpl.render_json(messages, !a.no_generation_prompt);
  fmt::print(stderr, "chat template {}{}\n", tmpl.hash(),
             tmpl.is_fallback() ? " (the model has none: the fallback)" : "");
  std::fwrite(prompt.data(), 1, prompt.size(), stdout);
}

const CommandRegistration kChatTemplate("chat-template", [](CLI::App& app) {
  auto* cmd = app.add_subcommand("chat-template", "Print the prompt a model's chat template makes of messages");
  auto a = std::make_shared<ChatTemplateArgs>();
  cmd->add_option("-m,--model", a->model, "GGUF model (its tokenizer.chat_template and BOS/EOS)")->required();
  cmd->add_option("--messages", a->messages_file,
                  "JSON array of {\"role\", \"content\"} messages (default: a system and a user message)");
  cmd->add_option("--template", a->template_file, "a Jinja chat template file to use instead of the model's");
  cmd->add_flag("--no-generation-prompt", a->no_generation_prompt, "do not open the assistant's turn");
  cmd->callback([a] { run_chat_template(*a); });
});

}  // namespace
}  // namespace flashmem::cli
