// Chat templates come from users' model files: every malformed or hostile template is a
// flashmem::Error naming the line and column, never a crash, a hang or unbounded memory. Cases:
// syntax errors of every kind, unsupported tags, runaway loops, output and nesting, and every
// prefix and seeded byte mutations of the real templates in tests/data/chat (each must either
// render or fail with an Error).
#include <gtest/gtest.h>

#include <filesystem>
#include <random>
#include <string>
#include <vector>

#include "../common/cli_run.h"
#include "chat/chat_template.h"
#include "util/error.h"

namespace flashmem {
namespace {

const std::vector<chat::ChatMessage> kMessages = {
    {"system", "Be brief."}, {"user", "Hi"}, {"assistant", "Hello"}, {"user", "Bye"}};

// Parses and renders; "" when it rendered, else the Error's message.
std::string try_render(const std::string& source) {
  try {
    chat::ChatTemplate t(source, "<s>", "</s>");
    t.render(kMessages, true);
    return "";
  } catch (const Error& e) {
    return e.what();
  }
}

struct Malformed {
  const char* name;
  std::string source;
  const char* expect;  // a piece of the message
};

std::string nested(int depth, const char* open, const char* close) {
  std::string s;
  for (int k = 0; k < depth; ++k) s += open;
  s += "1";
  for (int k = 0; k < depth; ++k) s += close;
  return s;
}

TEST(ChatTemplateMalformed, EveryCaseIsAnErrorWithItsPosition) {
  const std::vector<Malformed> cases = {
      {"unclosed variable", "Hello {{ name", "not closed"},
      {"unclosed block", "{% if true", "not closed"},
      {"unclosed comment", "{# comment", "comment is not closed"},
      {"unclosed string", "{{ 'abc }}", "string literal is not closed"},
      {"missing endif", "{% if true %}yes", "missing {% endif %}"},
      {"missing endfor", "{% for m in messages %}x", "missing {% endfor %}"},
      {"stray endfor", "{% endfor %}", "unexpected tag 'endfor'"},
      {"stray else", "x{% else %}", "unexpected tag 'else'"},
      {"unknown tag", "{% frobnicate %}", "unknown or unexpected tag 'frobnicate'"},
      {"macro", "{% macro f() %}{% endmacro %}", "'macro' tag is not supported"},
      {"raw", "{% raw %}{% endraw %}", "'raw' tag is not supported"},
      {"empty output", "{{ }}", "expected an expression"},
      {"set without value", "{% set %}", "expected a name"},
      {"bad character", "{{ a $ b }}", "unexpected character '$'"},
      {"unbalanced paren", "{{ (1 + 2 }}", "unexpected '}'"},
      {"unbalanced bracket", "{{ [1, 2) }}", "unexpected ')'"},
      {"bad escape", "{{ '\\xZZ' }}", "malformed"},
      {"break outside loop", "{% break %}", "outside a for loop"},
      {"recursive loop", "{% for x in messages recursive %}{% endfor %}", "recursive"},
      {"chained tests", "{{ 1 is number is number }}", "chained"},
      {"integer too large", "{{ 99999999999999999999 }}", "does not fit 64 bits"},
      {"deep parentheses", "{{ " + nested(200, "(", ")") + " }}", "nested deeper than 128"},
      {"deep lists", "{{ " + nested(200, "[", "]") + " }}", "nested deeper than 128"},
      {"deep unary", "{{ " + std::string(300, '-') + "1 }}", "nested deeper than 128"},
      {"deep blocks", [] {
         std::string s;
         for (int k = 0; k < 200; ++k) s += "{% if true %}";
         for (int k = 0; k < 200; ++k) s += "{% endif %}";
         return s;
       }(), "nested deeper than 128"},
      {"undefined attribute", "{{ nothing.here }}", "'nothing' is undefined"},
      {"undefined arithmetic", "{{ nothing + 1 }}", "'nothing' is undefined"},
      {"call of a non-function", "{{ messages() }}", "not callable"},
      {"unknown filter", "{{ 1 | frobnicate }}", "unknown filter 'frobnicate'"},
      {"unknown test", "{{ 1 is frobnicate }}", "unknown test 'frobnicate'"},
      {"division by zero", "{{ 1 / 0 }}", "division by zero"},
      {"integer overflow", "{{ 9223372036854775807 + 1 }}", "integer overflow"},
      {"huge power", "{{ 2 ** 200 }}", "integer overflow"},
      {"type error", "{{ 'a' + 1 }}", "unsupported operand"},
      {"raise_exception", "{{ raise_exception('no system role') }}", "no system role"},
      {"runaway loop", "{% for i in range(100000000) %}{% endfor %}", "range() of more than"},
      {"nested loops", "{% for i in range(10000) %}{% for j in range(10000) %}{% endfor %}{% endfor %}",
       "more than 1000000 loop iterations"},
      {"runaway output",
       "{% for i in range(900000) %}{{ 'x' * 100 }}{% endfor %}", "the rendering exceeds"},
      {"runaway string", "{{ 'abc' * 100000000 }}", "string repetition beyond"},
      {"doubling string", "{% set ns = namespace(s='ab') %}{% for i in range(40) %}{% set ns.s = ns.s + ns.s %}{% endfor %}",
       "string longer than"},
      {"namespace attribute of a non-namespace", "{% set x = 1 %}{% set x.y = 2 %}", "only namespace() objects"},
      {"unpack mismatch", "{% for a, b in [1, 2] %}{% endfor %}", "cannot unpack"},
      {"slice step zero", "{{ messages[::0] }}", "slice step cannot be zero"},
      {"tojson of undefined", "{{ nothing | tojson }}", "not JSON serializable"},
  };
  for (const Malformed& c : cases) {
    const std::string message = try_render(c.source);
    EXPECT_NE(message.find(c.expect), std::string::npos) << c.name << ": got '" << message << "'";
    EXPECT_NE(message.find("line "), std::string::npos) << c.name << ": " << message;
    EXPECT_NE(message.find("chat template "), std::string::npos) << c.name << ": " << message;
  }
}

std::vector<std::string> real_templates() {
  std::vector<std::string> out;
  for (const auto& entry : std::filesystem::directory_iterator(std::string(FLASHMEM_TEST_DATA) + "/chat"))
    if (entry.path().extension() == ".jinja") out.push_back(test::slurp(entry.path()));
  return out;
}

// Every prefix of every real template: a truncated file renders or is an Error.
TEST(ChatTemplateMalformed, EveryPrefixOfTheRealTemplates) {
  const std::vector<std::string> templates = real_templates();
  ASSERT_GE(templates.size(), 6u);
  size_t errors = 0, total = 0;
  for (const std::string& t : templates)
    for (size_t n = 0; n <= t.size(); ++n) {
      errors += !try_render(t.substr(0, n)).empty();
      ++total;
    }
  EXPECT_GT(errors, total / 4);  // most cuts fall inside a tag or block: the checks did run
}

// Seeded byte mutations (replace, insert, delete) of the real templates.
TEST(ChatTemplateMalformed, SeededMutationsOfTheRealTemplates) {
  const std::vector<std::string> templates = real_templates();
  std::mt19937 rng(20261201);  // fixed seed: the same mutations every run
  // Bytes that matter to the lexer and parser, and a few arbitrary ones.
  const std::string alphabet = "{}%#-+()[]'\"\\.|,:=~!<>*/ \n\tifendforsetnotin0123456789\xC3\xA9\xFF";
  size_t errors = 0;
  const int kMutants = 3000;  // ~1 s; enough to reach every tag kind of every template
  for (int k = 0; k < kMutants; ++k) {
    std::string t = templates[rng() % templates.size()];
    for (int edits = 1 + rng() % 4; edits > 0 && !t.empty(); --edits) {
      const size_t at = rng() % t.size();
      const char c = alphabet[rng() % alphabet.size()];
      switch (rng() % 3) {
        case 0: t[at] = c; break;
        case 1: t.insert(t.begin() + at, c); break;
        default: t.erase(at, 1 + rng() % 8); break;
      }
    }
    errors += !try_render(t).empty();
  }
  EXPECT_GT(errors, static_cast<size_t>(kMutants / 10));
}

}  // namespace
}  // namespace flashmem
