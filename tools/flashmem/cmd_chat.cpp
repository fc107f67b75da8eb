// `flashmem chat -m MODEL [--system TEXT] [-n N] [-c N] [sampling, KV and LSA flags as run]`:
// an interactive chat on standard input, one user message per line (a pipe works too).
// `/reset` starts over (keeping --system), `/quit` or the end of input ends. A message that
// cannot be answered (the context is full) prints an error and the chat goes on; the exit status
// is then 1. Each turn is
// rendered with the model's chat template and only its new tokens are prefilled
// (chat/conversation.h); the reply streams to stdout, ending with a newline.
#include <fmt/format.h>
#include <unistd.h>

#include <cstdio>
#include <iostream>

#include "chat/chat_template.h"
#include "chat/conversation.h"
#include "commands.h"
#include "common.h"
#include "tokenizer/tokenizer.h"
#include "util/error.h"

namespace flashmem::cli {
namespace {

// Without -c: llama.cpp's default context (or the model's trained one when smaller); the
// contiguous cache reserves it whole, so a larger default would cost memory for short chats.
constexpr int64_t kDefaultChatContext = 4096;

struct ChatArgs {
  WeightMemory weights = WeightMemory::kMap;  // --weights-memory
  std::string model, system, kv_type = "f16";
  // Per reply: a reply longer than 512 tokens is usually a model that missed its end of turn.
  int64_t n_predict = 512, n_ctx = 0;
  int threads = 0;
  bool has_ctx = false, verbose = false;
  SamplerOptions sampling;
  LsaArgs lsa;
};

void run_chat(const ChatArgs& a) {
  validate_sampler_options(a.sampling);
  if (a.n_predict < 1) fail("-n must be >= 1");
  if (is_oracle(a.lsa)) fail("chat does not support --policy oracle:F (it needs a recording pass per turn)");
  auto model = Model::load(a.model, a.weights);
  const DType kv_type = parse_kv_type(a.kv_type);
  const int64_t trained = model->config().context_length;
  const ContextRequest context{
      .n_ctx = a.has_ctx ? a.n_ctx : std::min(trained > 0 ? trained : kDefaultChatContext, kDefaultChatContext),
      .kv_type = kv_type};
  const int64_t n_ctx = cli_context(model->config(), context, a.lsa.store);
  Engine engine(model, engine_options(a.lsa, a.threads));
  Sequence sequence(engine, sequence_options(a.lsa, n_ctx, kv_type));
  const Tokenizer& tokenizer = engine.tokenizer();
  const chat::ChatTemplate tmpl = chat::ChatTemplate::from_gguf(model->file(), tokenizer);
  if (a.verbose)
    fmt::print(stderr, "chat: template {}{}, context {} tokens\n", tmpl.hash(),
               tmpl.is_fallback() ? " (the model has none: the fallback)" : "", sequence.capacity());
  chat::Conversation conversation(engine, sequence, tmpl, a.system);
  Sampler sampler(a.sampling);
  const bool interactive = ::isatty(STDIN_FILENO) != 0;
  std::string line;
  int failed_turns = 0;
  for (int turn = 1;;) {
    if (interactive) fmt::print(stderr, "> ");
    if (!std::getline(std::cin, line)) break;
    if (!line.empty() && line.back() == '\r') line.pop_back();
    if (line == "/quit" || line == "/exit") break;
    if (line == "/reset") {
      conversation.reset();
      fmt::print(stderr, "chat: conversation reset\n");
      continue;
    }
    if (line.empty()) continue;
    chat::TurnStats st;
    try {
      st = conversation.reply(line, sampler, a.n_predict, [&](int32_t t) {
        const std::string piece = tokenizer.token_to_piece(t);
        std::fwrite(piece.data(), 1, piece.size(), stdout);
        flush_stdout();
        return true;
      });
    } catch (const Error& e) {  // the chat goes on (/reset frees the context); the exit status says so
      fmt::print(stderr, "error: {}\n", e.what());
      ++failed_turns;
      continue;
    }
    std::fputc('\n', stdout);
    flush_stdout();
    if (a.verbose)
      fmt::print(stderr,
                 "chat: turn {}: reused {} tokens, prefilled {} new tokens{}, generated {}{}; context {} of {}\n",
                 turn, st.reused_tokens, st.prefilled_tokens,
                 st.re_prefilled ? " (history re-rendered differently: prefilled from scratch)" : "",
                 st.generated_tokens, st.generation.stopped_at_eog ? " (end of turn)" : "", sequence.n_past(),
                 sequence.capacity());
    ++turn;
  }
  if (failed_turns > 0) fail("{} message(s) got no reply", failed_turns);
}

const CommandRegistration kChat("chat", [](CLI::App& app) {
  auto* cmd = app.add_subcommand("chat", "Chat with a model on standard input (/reset, /quit)");
  auto a = std::make_shared<ChatArgs>();
  cmd->add_option("-m,--model", a->model, "GGUF model")->required();
  cmd->add_option("--system", a->system, "system message opening the conversation");
  cmd->add_option("-n,--n-predict", a->n_predict, "most tokens per reply")->capture_default_str();
  cmd->add_option("-c,--ctx-size", a->n_ctx,
                  "KV capacity of the whole conversation (default: 4096, or the model's trained context if smaller)");
  add_sampler_options(cmd, a->sampling);
  cmd->add_option("--kv-type", a->kv_type, "KV cache type: f16 | f32 | q8_0")->capture_default_str();
  add_threads_option(cmd, a->threads);
  add_weights_memory_option(cmd, a->weights);
  cmd->add_flag("--verbose", a->verbose, "print each turn's reused, prefilled and generated tokens to stderr");
  add_lsa_options(cmd, a->lsa);
  cmd->callback([a, cmd] {
    a->has_ctx = cmd->count("--ctx-size") > 0;
    run_chat(*a);
  });
});

}  // namespace
}  // namespace flashmem::cli
