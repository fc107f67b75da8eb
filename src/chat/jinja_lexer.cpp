#include "chat/jinja_lexer.h"

#include <fmt/format.h>

#include <algorithm>
#include <cctype>
#include <charconv>

#include "chat/py_string.h"
#include "tokenizer/unicode.h"
#include "util/error.h"

namespace flashmem::jinja {

void fail_at(SourcePos pos, const std::string& message) {
  fail("line {}, column {}: {}", pos.line, pos.column, message);
}

namespace {

// \r\n and \r become \n; one trailing newline goes (Jinja's keep_trailing_newline=False).
std::string normalize_newlines(std::string_view source) {
  std::string out;
  out.reserve(source.size());
  for (size_t k = 0; k < source.size(); ++k) {
    if (source[k] == '\r') {
      out += '\n';
      if (k + 1 < source.size() && source[k + 1] == '\n') ++k;
    } else {
      out += source[k];
    }
  }
  if (!out.empty() && out.back() == '\n') out.pop_back();
  return out;
}

bool is_name_start(char c) { return std::isalpha(static_cast<unsigned char>(c)) || c == '_'; }
bool is_name_char(char c) { return std::isalnum(static_cast<unsigned char>(c)) || c == '_'; }
bool is_digit(char c) { return c >= '0' && c <= '9'; }

class Lexer {
 public:
  explicit Lexer(std::string_view source) : src_(normalize_newlines(source)) {
    line_starts_.push_back(0);
    for (size_t k = 0; k < src_.size(); ++k)
      if (src_[k] == '\n') line_starts_.push_back(k + 1);
  }

  std::vector<Token> run() {
    bool line_starting = true;  // the previous tag ended with a newline (or nothing came yet)
    size_t at = 0;
    while (at < src_.size()) {
      const size_t tag = find_tag(at);
      std::string text = src_.substr(at, tag - at);
      if (tag == src_.size()) {
        emit_text(std::move(text), at);
        break;
      }
      const char kind = src_[tag + 1];  // '{', '%' or '#'
      size_t body = tag + 2;
      char modifier = 0;
      if (body < src_.size() && (src_[body] == '-' || src_[body] == '+')) modifier = src_[body++];
      if (modifier == '-') {
        text = py_strip(text, std::nullopt, false, true);
      } else if (modifier != '+' && kind != '{') {  // lstrip_blocks
        const size_t newline = text.rfind('\n');
        const size_t line_begin = newline == std::string::npos ? 0 : newline + 1;
        if ((newline != std::string::npos || line_starting) && line_begin < text.size() &&
            py_space_prefix(text, line_begin) == text.size() - line_begin)
          text.resize(line_begin);
      }
      emit_text(std::move(text), at);
      if (kind == '#') {
        at = end_of_comment(tag, body, line_starting);
        continue;
      }
      push(kind == '{' ? TokenType::kVariableBegin : TokenType::kBlockBegin, "", tag);
      at = lex_tag(kind, tag, body, line_starting);
    }
    push(TokenType::kEnd, "", src_.size());
    return std::move(out_);
  }

 private:
  SourcePos pos_of(size_t at) const {
    const auto it = std::upper_bound(line_starts_.begin(), line_starts_.end(), at);
    const size_t line = static_cast<size_t>(it - line_starts_.begin());
    return {static_cast<int>(line), static_cast<int>(at - line_starts_[line - 1] + 1)};
  }

  void push(TokenType type, std::string text, size_t at) {
    Token t;
    t.type = type;
    t.text = std::move(text);
    t.pos = pos_of(at);
    out_.push_back(std::move(t));
  }

  void emit_text(std::string text, size_t at) {
    if (!text.empty()) push(TokenType::kText, std::move(text), at);
  }

  size_t find_tag(size_t from) const {
    for (size_t k = from; k + 1 < src_.size(); ++k)
      if (src_[k] == '{' && (src_[k + 1] == '{' || src_[k + 1] == '%' || src_[k + 1] == '#')) return k;
    return src_.size();
  }

  // After a tag's end at `at` (just past its closing characters): strip the whitespace that
  // follows (`-`), or drop one newline (trim_blocks, block and comment tags only).
  size_t after_tag_end(size_t at, char modifier, bool trim_newline, bool& line_starting) const {
    if (modifier == '-') at += py_space_prefix(src_, at);
    else if (modifier != '+' && trim_newline && at < src_.size() && src_[at] == '\n') ++at;
    line_starting = at > 0 && src_[at - 1] == '\n';
    return at;
  }

  size_t end_of_comment(size_t tag, size_t body, bool& line_starting) const {
    const size_t close = src_.find("#}", body);
    if (close == std::string::npos) fail_at(pos_of(tag), "comment is not closed with #}");
    const char modifier = close > body && (src_[close - 1] == '-' || src_[close - 1] == '+') ? src_[close - 1] : 0;
    return after_tag_end(close + 2, modifier, true, line_starting);
  }

  // Tokens of one {{ ... }} or {% ... %}; returns the position after the closing tag.
  size_t lex_tag(char kind, size_t tag, size_t at, bool& line_starting) {
    std::vector<char> open_brackets;  // a closing tag only counts outside brackets (as in Jinja)
    const std::string close = kind == '{' ? "}}" : "%}";
    while (true) {
      at += py_space_prefix(src_, at);
      if (at >= src_.size())
        fail_at(pos_of(tag), fmt::format("tag is not closed with {}", close));
      if (open_brackets.empty()) {
        if (src_.compare(at, 3, "-" + close) == 0) {
          push(kind == '{' ? TokenType::kVariableEnd : TokenType::kBlockEnd, "", at);
          return after_tag_end(at + 3, '-', kind == '%', line_starting);
        }
        if (kind == '%' && src_.compare(at, 3, "+%}") == 0) {
          push(TokenType::kBlockEnd, "", at);
          return after_tag_end(at + 3, '+', true, line_starting);
        }
        if (src_.compare(at, 2, close) == 0) {
          push(kind == '{' ? TokenType::kVariableEnd : TokenType::kBlockEnd, "", at);
          return after_tag_end(at + 2, 0, kind == '%', line_starting);
        }
      }
      const char c = src_[at];
      if (is_name_start(c)) {
        size_t end = at + 1;
        while (end < src_.size() && is_name_char(src_[end])) ++end;
        push(TokenType::kName, src_.substr(at, end - at), at);
        at = end;
      } else if (c == '\'' || c == '"') {
        at = lex_string(at);
      } else if (is_digit(c)) {
        at = lex_number(at);
      } else {
        at = lex_operator(at, open_brackets);
      }
    }
  }

  // Python's unicode-escape rules for the literal's body.
  size_t lex_string(size_t begin) {
    const char quote = src_[begin];
    std::string value;
    size_t at = begin + 1;
    const auto hex = [&](size_t from, int digits) {
      uint32_t cp = 0;
      if (from + digits > src_.size()) fail_at(pos_of(from), "truncated \\x, \\u or \\U escape");
      const auto [end, ec] = std::from_chars(src_.data() + from, src_.data() + from + digits, cp, 16);
      if (ec != std::errc() || end != src_.data() + from + digits)
        fail_at(pos_of(from), "malformed \\x, \\u or \\U escape");
      if (cp > 0x10FFFF) fail_at(pos_of(from), "escape beyond U+10FFFF");
      return cp;
    };
    while (true) {
      if (at >= src_.size()) fail_at(pos_of(begin), "string literal is not closed");
      const char c = src_[at];
      if (c == quote) break;
      if (c != '\\') {
        value += c;
        ++at;
        continue;
      }
      if (at + 1 >= src_.size()) fail_at(pos_of(begin), "string literal is not closed");
      const char e = src_[at + 1];
      at += 2;
      switch (e) {
        case '\n': break;
        case '\\': value += '\\'; break;
        case '\'': value += '\''; break;
        case '"': value += '"'; break;
        case 'n': value += '\n'; break;
        case 't': value += '\t'; break;
        case 'r': value += '\r'; break;
        case 'a': value += '\a'; break;
        case 'b': value += '\b'; break;
        case 'f': value += '\f'; break;
        case 'v': value += '\v'; break;
        case 'x': utf8_append(value, hex(at, 2)); at += 2; break;
        case 'u': utf8_append(value, hex(at, 4)); at += 4; break;
        case 'U': utf8_append(value, hex(at, 8)); at += 8; break;
        default:
          if (e >= '0' && e <= '7') {  // up to three octal digits
            uint32_t cp = e - '0';
            for (int k = 0; k < 2 && at < src_.size() && src_[at] >= '0' && src_[at] <= '7'; ++k)
              cp = cp * 8 + (src_[at++] - '0');
            utf8_append(value, cp);
          } else {  // Python keeps unknown escapes as written
            value += '\\';
            value += e;
          }
      }
    }
    push(TokenType::kString, std::move(value), begin);
    return at + 1;
  }

  // Digits with optional '_' separators; floats with a fraction and/or an exponent.
  size_t lex_number(size_t begin) {
    size_t at = begin;
    std::string digits;
    const auto run = [&] {
      const size_t start = at;
      while (at < src_.size() && (is_digit(src_[at]) || (src_[at] == '_' && at > start))) {
        if (src_[at] != '_') digits += src_[at];
        ++at;
      }
    };
    run();
    bool is_float = false;
    // After '.', a number is an attribute index (`foo.0`), never a float (Jinja's (?<!\.)).
    const bool after_dot = begin > 0 && src_[begin - 1] == '.';
    if (!after_dot && at + 1 < src_.size() && src_[at] == '.' && is_digit(src_[at + 1])) {
      is_float = true;
      digits += '.';
      ++at;
      run();
    }
    if (!after_dot && at < src_.size() && (src_[at] == 'e' || src_[at] == 'E')) {
      size_t k = at + 1;
      if (k < src_.size() && (src_[k] == '+' || src_[k] == '-')) ++k;
      if (k < src_.size() && is_digit(src_[k])) {
        is_float = true;
        digits += 'e';
        digits += src_.substr(at + 1, k - at - 1);
        at = k;
        run();
      }
    }
    Token t;
    t.pos = pos_of(begin);
    t.text = src_.substr(begin, at - begin);
    if (is_float) {
      t.type = TokenType::kFloat;
      const auto [end, ec] = std::from_chars(digits.data(), digits.data() + digits.size(), t.real);
      if (ec != std::errc()) fail_at(t.pos, fmt::format("number {} is out of range", t.text));
    } else {
      t.type = TokenType::kInteger;
      const auto [end, ec] = std::from_chars(digits.data(), digits.data() + digits.size(), t.integer);
      if (ec != std::errc()) fail_at(t.pos, fmt::format("integer {} does not fit 64 bits", t.text));
    }
    out_.push_back(std::move(t));
    return at;
  }

  size_t lex_operator(size_t at, std::vector<char>& open_brackets) {
    static const char* const kTwo[] = {"//", "**", "==", "!=", ">=", "<="};
    for (const char* op : kTwo)
      if (src_.compare(at, 2, op) == 0) {
        push(TokenType::kOperator, op, at);
        return at + 2;
      }
    const char c = src_[at];
    if (std::string_view("+-/*%~[](){}<>=.:|,;").find(c) == std::string_view::npos)
      fail_at(pos_of(at), fmt::format("unexpected character '{}'", c));
    if (c == '(' || c == '[' || c == '{') open_brackets.push_back(c);
    if (c == ')' || c == ']' || c == '}') {
      const char want = c == ')' ? '(' : c == ']' ? '[' : '{';
      if (open_brackets.empty() || open_brackets.back() != want)
        fail_at(pos_of(at), fmt::format("unexpected '{}'", c));
      open_brackets.pop_back();
    }
    push(TokenType::kOperator, std::string(1, c), at);
    return at + 1;
  }

  std::string src_;
  std::vector<size_t> line_starts_;  // byte offset of each line's first character
  std::vector<Token> out_;
};

}  // namespace

std::vector<Token> lex_template(std::string_view source) { return Lexer(source).run(); }

}  // namespace flashmem::jinja
