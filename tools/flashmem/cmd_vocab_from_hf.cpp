// `flashmem vocab-from-hf --tokenizer tokenizer.json [--config tokenizer_config.json]
//  [--vocab-size N] --pre NAME -o OUT.gguf`: a vocabulary-only GGUF from a Hugging Face
// byte-level BPE tokenizer (hf_vocab.h), with the config's chat template as
// `tokenizer.chat_template` (chat/chat_template.h), loadable by `flashmem tokenize` and by llama.cpp's
// vocab-only loaders (general.architecture is "llama"; there are no tensors).
#include <fmt/format.h>

#include "chat/chat_template.h"
#include "commands.h"
#include "gguf/gguf.h"
#include "tokenizer/hf_vocab.h"
#include "tokenizer/tokenizer.h"
#include "util/error.h"
#include "util/read_file.h"

namespace flashmem::cli {
namespace {

struct VocabFromHfOptions {
  std::string tokenizer;
  std::string config;
  std::string pre;
  std::string out;
  int64_t vocab_size = 0;
};

void run_vocab_from_hf(const VocabFromHfOptions& opt) {
  if (opt.tokenizer.empty() || opt.pre.empty() || opt.out.empty()) {
    fail("vocab-from-hf: --tokenizer, --pre and -o are required");
  }
  HfVocabOptions options;
  options.pre = opt.pre;
  if (opt.vocab_size > 0) options.vocab_size = opt.vocab_size;
  const std::string config = opt.config.empty() ? std::string() : read_file(opt.config);
  const VocabSpec spec = vocab_spec_from_hf(read_file(opt.tokenizer), config, options);
  const Tokenizer check(spec);  // validates ids, merges and the pre-tokenizer before writing
  GgufWriter w;
  w.set_string("general.architecture", "llama");
  w.set_string("general.name", "vocab-only (" + opt.pre + ")");
  add_vocab_to_gguf(spec, w);
  if (!config.empty())
    if (const std::optional<std::string> chat = chat::chat_template_from_hf_config(config))
      w.set_string("tokenizer.chat_template", *chat);
  w.write(opt.out);
  fmt::print("{}: {} tokens, {} merges, pre {}\n", opt.out, check.n_vocab(), spec.merges.size(),
             opt.pre);
}

const CommandRegistration kVocabFromHf("vocab-from-hf", [](CLI::App& app) {
  auto opt = std::make_shared<VocabFromHfOptions>();
  auto* cmd = app.add_subcommand("vocab-from-hf",
                                 "Write a vocabulary-only GGUF from a Hugging Face tokenizer.json");
  cmd->add_option("--tokenizer", opt->tokenizer, "tokenizer.json");
  cmd->add_option("--config", opt->config, "tokenizer_config.json (special tokens, add_bos, chat template)");
  cmd->add_option("--vocab-size", opt->vocab_size, "config.json's vocab_size (pads the vocabulary)")
      ->check(CLI::PositiveNumber);
  cmd->add_option("--pre", opt->pre, "tokenizer.ggml.pre name, e.g. llama-bpe, qwen2, deepseek-v3");
  cmd->add_option("-o,--output", opt->out, "Output GGUF path");
  cmd->callback([opt] { run_vocab_from_hf(*opt); });
});

}  // namespace
}  // namespace flashmem::cli
