// Jinja2 template text -> tokens, with the environment Hugging Face renders chat templates in
// (trim_blocks=True, lstrip_blocks=True, keep_trailing_newline=False):
//   - newlines (\r\n, \r) become \n and one trailing newline of the template is dropped;
//   - `{%-`/`{{-`/`{#-` strip all whitespace before the tag, `-%}`/`-}}`/`-#}` all after it;
//   - trim_blocks: the first newline after a block or comment tag is dropped (`+%}` keeps it);
//   - lstrip_blocks: spaces and tabs from the start of a line to a block or comment tag are
//     dropped (`{%+` keeps them);
//   - comments vanish; `{% raw %}` is not supported.
// Errors are flashmem::Error "line L, column C: ...".
#pragma once
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace flashmem::jinja {

struct SourcePos {
  int line = 1;
  int column = 1;
};

enum class TokenType {
  kText,           // template data between tags
  kVariableBegin,  // {{
  kVariableEnd,    // }}
  kBlockBegin,     // {%
  kBlockEnd,       // %}
  kName,
  kString,         // text: the literal's value, escapes resolved
  kInteger,
  kFloat,
  kOperator,       // text: the operator ("+", "//", "==", "(", ...)
  kEnd,            // end of template
};

struct Token {
  TokenType type = TokenType::kEnd;
  std::string text;
  int64_t integer = 0;
  double real = 0;
  SourcePos pos;
};

// Template source -> tokens, ending with one kEnd token.
std::vector<Token> lex_template(std::string_view source);

// "line L, column C: message" as an Error.
[[noreturn]] void fail_at(SourcePos pos, const std::string& message);

}  // namespace flashmem::jinja
