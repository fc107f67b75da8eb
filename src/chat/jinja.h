// A hand-written interpreter for the Jinja2 subset that chat templates (`tokenizer.chat_template`
// in GGUF files, `chat_template` in tokenizer_config.json) use, rendering byte-identically to
// Jinja2 in Hugging Face's chat-template environment (trim_blocks, lstrip_blocks, HF's tojson,
// raise_exception, strftime_now, loop controls). What is supported is listed in
// chat/jinja_lexer.h (whitespace), chat/jinja_parser.h (syntax) and chat/jinja_builtins.h
// (filters, tests, methods, functions); anything else is an Error naming it.
//
// Templates come from users' files: every failure (syntax, an undefined value used, a template's
// raise_exception, runaway loops or output) is a flashmem::Error "line L, column C: ...", never a
// crash. Limits: kMaxNesting (parser.h), kMaxTextBytes and kMaxIterations (value.h).
// A Template is immutable after parsing; render() may run on several threads at once.
#pragma once
#include <memory>
#include <string>
#include <string_view>

#include "chat/jinja_ast.h"
#include "chat/jinja_value.h"

namespace flashmem::jinja {

class Template {
 public:
  // Throws Error on a syntax error or an unsupported construct.
  static Template parse(std::string_view source);
  // The template's output with `variables` (name -> value) visible; names the template does not
  // find are Undefined, as in Jinja2.
  std::string render(const Dict& variables) const;

 private:
  std::shared_ptr<const Body> body_;
};

}  // namespace flashmem::jinja
