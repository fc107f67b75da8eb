// Tokens -> syntax tree, following Jinja2's grammar and operator precedence (lowest first):
// `a if c else b`, or, and, not, comparisons (== != < <= > >= in, not in; chained), + -, ~,
// * / // %, **, unary - +, then postfix `.attr`, `[index]`, `[a:b:c]`, `(call)`, `| filter`
// and `is test`. Statements: if/elif/else, for (tuple targets, `if` filter, else), set (name,
// tuple, namespace attribute, block form), break, continue, generation. Macros, call blocks,
// filter blocks, raw, include/import/extends are refused with an error naming the tag.
#pragma once
#include <string_view>

#include "chat/jinja_ast.h"

namespace flashmem::jinja {

// Brackets, unary operators and blocks nested inside each other: real chat templates nest fewer
// than 10 deep; 128 bounds the parser's and the renderer's recursion (well under 1 MB of stack)
// for a template written to exhaust it.
constexpr int kMaxNesting = 128;

// Throws Error "line L, column C: ..." on a syntax error.
Body parse_template(std::string_view source);

}  // namespace flashmem::jinja
