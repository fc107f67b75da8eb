#include "tokenizer/regex_split.h"

#include <fmt/format.h>
#include <unicode/utypes.h>

#include "tokenizer/unicode.h"
#include "util/error.h"

namespace flashmem {
namespace {

constexpr uint32_t kVerticalTab = 0x0B;
// Stands in for codepoints UTF-16 cannot carry alone (surrogates, > U+10FFFF): a private-use
// codepoint is, like them, in none of the classes the table uses (\s, L, N, P, S, M).
constexpr uint32_t kOtherStandIn = 0xE000;

// std::regex's \s on llama.cpp's text (non-ASCII whitespace already became U+000B).
constexpr std::string_view kSpaceItems = "\\t\\n\\x{B}\\f\\r\\x{20}";

std::string hex_item(uint32_t cpt) { return fmt::format("\\x{{{:X}}}", cpt); }

class Translator {
 public:
  explicit Translator(std::string_view pattern) : src_(pattern), p_(utf8_decode(pattern)) {}

  std::string run() {
    while (i_ < p_.size()) {
      const uint32_t c = p_[i_];
      if (c == '\\') {
        out_ += escape_outside();
      } else if (c == '[') {
        out_ += bracket();
      } else if (c == '(' && (i_ + 1 >= p_.size() || p_[i_ + 1] != '?')) {
        out_ += "(?:";  // groups are never read back: non-capturing is cheaper for ICU
        ++i_;
      } else if (c == '.') {
        unsupported("'.'");
      } else if (c >= 0x80) {
        out_ += hex_item(c);
        ++i_;
      } else {
        out_ += static_cast<char>(c);
        ++i_;
      }
    }
    return out_;
  }

 private:
  [[noreturn]] void unsupported(std::string_view what) const {
    fail("pre-tokenizer regex '{}': {} is not supported", src_, what);
  }

  // \p{X} at i_ (the backslash); returns the ICU set for it.
  std::string category() {
    const size_t close = [&] {
      for (size_t k = i_ + 2; k < p_.size(); ++k) {
        if (p_[k] == '}') return k;
      }
      return p_.size();
    }();
    if (i_ + 2 >= p_.size() || p_[i_ + 2] != '{' || close == p_.size()) unsupported("'\\p' without {name}");
    std::string name;
    for (size_t k = i_ + 3; k < close; ++k) utf8_append(name, p_[k]);
    i_ = close + 1;
    if (name == "L" || name == "N" || name == "P" || name == "M") return "\\p{" + name + "}";
    if (name == "S") return "[\\p{S}--[\\x{7E}]]";
    unsupported("\\p{" + name + "}");
  }

  std::string escape_outside() {
    if (i_ + 1 >= p_.size()) unsupported("a trailing backslash");
    const uint32_t e = p_[i_ + 1];
    switch (e) {
      case 's':
        i_ += 2;
        return fmt::format("[{}]", kSpaceItems);
      case 'S':
        i_ += 2;
        return fmt::format("[^{}]", kSpaceItems);
      case 'd':
        i_ += 2;
        return "[0-9]";
      case 'p':
        return category();
      case 'w': case 'W': case 'b': case 'B': case 'D': case 'P':
        unsupported(fmt::format("'\\{}'", static_cast<char>(e)));
      default: {
        std::string s = "\\";
        utf8_append(s, e);
        i_ += 2;
        return s;
      }
    }
  }

  // One bracket item at i_: a single codepoint (returned through `cpt`) or a set (returned text).
  bool bracket_atom(uint32_t& cpt, std::string& set) {
    const uint32_t c = p_[i_];
    if (c != '\\') {
      cpt = c;
      ++i_;
      return true;
    }
    if (i_ + 1 >= p_.size()) unsupported("a trailing backslash");
    const uint32_t e = p_[i_ + 1];
    switch (e) {
      case 's': set = kSpaceItems; i_ += 2; return false;
      case 'd': set = "0-9"; i_ += 2; return false;
      case 'p': set = category(); return false;
      case 'r': cpt = '\r'; break;
      case 'n': cpt = '\n'; break;
      case 't': cpt = '\t'; break;
      case 'f': cpt = '\f'; break;
      case 'v': cpt = kVerticalTab; break;
      case 'S': case 'w': case 'W': case 'b': case 'D': case 'P':
        unsupported(fmt::format("'\\{}' inside brackets", static_cast<char>(e)));
      default: cpt = e; break;  // an escaped literal: \\ \[ \] \- \$ \+ \^ \| ...
    }
    i_ += 2;
    return true;
  }

  std::string bracket() {
    ++i_;
    std::string body;
    bool negate = false;
    if (i_ < p_.size() && p_[i_] == '^') {
      negate = true;
      ++i_;
    }
    while (true) {
      if (i_ >= p_.size()) unsupported("an unterminated '['");
      if (p_[i_] == ']') break;
      uint32_t lo = 0;
      std::string set;
      if (!bracket_atom(lo, set)) {
        body += set;
        continue;
      }
      // ECMAScript: '-' between two codepoints is a range; first or last it is a literal.
      if (i_ + 1 < p_.size() && p_[i_] == '-' && p_[i_ + 1] != ']') {
        ++i_;
        uint32_t hi = 0;
        if (!bracket_atom(hi, set) || hi < lo) unsupported("a bad range inside brackets");
        body += hex_item(lo) + "-" + hex_item(hi);
      } else {
        body += hex_item(lo);
      }
    }
    ++i_;
    return fmt::format("[{}{}]", negate ? "^" : "", body);
  }

  std::string_view src_;
  std::vector<uint32_t> p_;
  size_t i_ = 0;
  std::string out_;
};

}  // namespace

MatchText make_match_text(std::span<const uint32_t> cpts) {
  MatchText t;
  t.cp_to_u16.reserve(cpts.size() + 1);
  for (const uint32_t c : cpts) {
    t.cp_to_u16.push_back(t.utf16.length());
    uint32_t m = c;
    if (c > 0x10FFFF || (c >= 0xD800 && c <= 0xDFFF)) {
      m = kOtherStandIn;
    } else if (c >= 0x80 && is_unicode_whitespace(c)) {
      m = kVerticalTab;
    }
    t.utf16.append(static_cast<UChar32>(m));
  }
  t.cp_to_u16.push_back(t.utf16.length());
  t.u16_to_cp.assign(static_cast<size_t>(t.utf16.length()) + 1, 0);
  for (size_t k = 0; k + 1 < t.cp_to_u16.size(); ++k) {
    // Both units of a surrogate pair map to the codepoint (matches never end between them).
    for (int32_t u = t.cp_to_u16[k]; u < t.cp_to_u16[k + 1]; ++u) t.u16_to_cp[u] = static_cast<int32_t>(k);
  }
  t.u16_to_cp.back() = static_cast<int32_t>(cpts.size());
  return t;
}

std::string to_icu_pattern(std::string_view pattern) { return Translator(pattern).run(); }

SplitRegex::SplitRegex(std::string_view pattern) : source_(pattern) {
  const std::string icu_source = to_icu_pattern(pattern);
  UParseError where{};
  UErrorCode status = U_ZERO_ERROR;
  std::shared_ptr<const icu::RegexPattern> compiled(
      icu::RegexPattern::compile(icu::UnicodeString::fromUTF8(icu_source), 0, where, status));
  if (U_FAILURE(status) || !compiled) {
    fail("pre-tokenizer regex '{}' does not compile as '{}': {} at offset {}", source_, icu_source,
         u_errorName(status), where.offset);
  }
  pattern_ = std::move(compiled);
}

void SplitRegex::split(const MatchText& text, const std::vector<size_t>& in,
                       std::vector<size_t>& out) const {
  UErrorCode status = U_ZERO_ERROR;
  std::unique_ptr<icu::RegexMatcher> m(pattern_->matcher(text.utf16, status));
  // Backtracking frames grow with the length of one match (a word of letters); the text bounds
  // them, so ICU's default 8 MB cap would only turn long words into errors.
  if (U_SUCCESS(status)) m->setStackLimit(0, status);
  if (U_FAILURE(status)) fail("pre-tokenizer regex '{}': {}", source_, u_errorName(status));
  size_t begin = 0;
  for (const size_t len : in) {
    const size_t end = begin + len;
    m->region(text.cp_to_u16[begin], text.cp_to_u16[end], status);
    size_t gap = begin;
    while (U_SUCCESS(status) && m->find(status)) {
      const auto s = static_cast<size_t>(text.u16_to_cp[m->start(status)]);
      const auto e = static_cast<size_t>(text.u16_to_cp[m->end(status)]);
      if (e == s) continue;  // an empty match adds no piece
      if (s > gap) out.push_back(s - gap);
      out.push_back(e - s);
      gap = e;
    }
    if (U_FAILURE(status)) fail("pre-tokenizer regex '{}': {}", source_, u_errorName(status));
    if (end > gap) out.push_back(end - gap);
    begin = end;
  }
}

}  // namespace flashmem
