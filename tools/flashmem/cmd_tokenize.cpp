// `flashmem tokenize -m MODEL (--text S | --file F) [--add-special] [--parse-special] [--pieces]`:
// loads only the vocabulary (GGUF metadata, no weights) and prints the ids space-separated on one
// line, or with --pieces one `id<TAB>piece` line per token.
#include <fmt/format.h>


#include "commands.h"
#include "gguf/gguf.h"
#include "tokenizer/tokenizer.h"
#include "util/error.h"
#include "util/read_file.h"

namespace flashmem::cli {
namespace {

struct TokenizeOptions {
  std::string model;
  std::string text;
  std::string file;
  bool add_special = false;
  bool parse_special = false;
  bool pieces = false;
};


void run_tokenize(const TokenizeOptions& opt, bool has_text, bool has_file) {
  if (opt.model.empty()) fail("tokenize: -m MODEL is required");
  if (has_text == has_file) fail("tokenize: give exactly one of --text or --file");
  const std::string text = has_text ? opt.text : read_file(opt.file);
  const GgufFile file = GgufFile::open(opt.model);
  const Tokenizer tokenizer = Tokenizer::from_gguf(file);
  const std::vector<int32_t> ids = tokenizer.encode(text, opt.add_special, opt.parse_special);
  std::string out;
  if (opt.pieces) {
    for (const int32_t id : ids) {
      out += fmt::format("{}\t{}\n", id, tokenizer.token_to_piece(id, /*render_special=*/true));
    }
  } else {
    for (size_t k = 0; k < ids.size(); ++k) out += fmt::format("{}{}", k ? " " : "", ids[k]);
    out += '\n';
  }
  fmt::print("{}", out);
}

const CommandRegistration kTokenize("tokenize", [](CLI::App& app) {
  auto opt = std::make_shared<TokenizeOptions>();
  auto* cmd = app.add_subcommand("tokenize", "Print the token ids of a text (vocabulary only)");
  cmd->add_option("-m,--model", opt->model, "GGUF model or vocabulary file");
  auto* text = cmd->add_option("--text", opt->text, "Text to tokenize");
  auto* file = cmd->add_option("--file", opt->file, "File whose bytes to tokenize");
  cmd->add_flag("--add-special", opt->add_special, "Add BOS/EOS as the vocabulary says");
  cmd->add_flag("--parse-special", opt->parse_special, "Recognise special-token text");
  cmd->add_flag("--pieces", opt->pieces, "Print id<TAB>piece per token");
  cmd->callback([opt, text, file] { run_tokenize(*opt, text->count() > 0, file->count() > 0); });
});

}  // namespace
}  // namespace flashmem::cli
