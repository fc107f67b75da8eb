#include "chat/py_string.h"

#include <unicode/locid.h>
#include <unicode/uchar.h>
#include <unicode/unistr.h>

#include <algorithm>

#include "tokenizer/unicode.h"
#include "util/error.h"

namespace flashmem::jinja {
namespace {

// One code point per valid UTF-8 sequence, one per stray byte.
size_t sequence_length(std::string_view s, size_t at) {
  const size_t n = utf8_seq_len(static_cast<uint8_t>(s[at]));
  if (n == 1 || at + n > s.size()) return 1;
  for (size_t k = 1; k < n; ++k)
    if ((static_cast<uint8_t>(s[at + k]) & 0xC0) != 0x80) return 1;
  return n;
}

uint32_t decode_at(std::string_view s, size_t at, size_t n) {
  if (n == 1) return static_cast<uint8_t>(s[at]);
  return utf8_decode(s.substr(at, n)).front();
}

// str.isspace(): the White_Space property plus the separators U+001C..U+001F (bidi class B/S).
bool py_isspace(uint32_t cp) { return (cp >= 0x1C && cp <= 0x1F) || is_unicode_whitespace(cp); }

struct CodePoint {
  size_t begin, end;
  uint32_t cp;
};

std::vector<CodePoint> code_points(std::string_view s) {
  std::vector<CodePoint> out;
  for (size_t at = 0; at < s.size();) {
    const size_t n = sequence_length(s, at);
    out.push_back({at, at + n, decode_at(s, at, n)});
    at += n;
  }
  return out;
}

std::string icu_case(std::string_view s, bool upper) {
  icu::UnicodeString u = icu::UnicodeString::fromUTF8(icu::StringPiece(s.data(), static_cast<int32_t>(s.size())));
  if (upper) u.toUpper(icu::Locale::getRoot());
  else u.toLower(icu::Locale::getRoot());
  std::string out;
  u.toUTF8String(out);
  return out;
}

bool is_cased(uint32_t cp) { return u_hasBinaryProperty(static_cast<UChar32>(cp), UCHAR_CASED); }

}  // namespace

size_t py_space_prefix(std::string_view s, size_t at) {
  size_t k = at;
  while (k < s.size()) {
    const size_t n = sequence_length(s, k);
    if (!py_isspace(decode_at(s, k, n))) break;
    k += n;
  }
  return k - at;
}

std::vector<size_t> codepoint_offsets(std::string_view s) {
  std::vector<size_t> out;
  for (size_t at = 0; at < s.size(); at += sequence_length(s, at)) out.push_back(at);
  out.push_back(s.size());
  return out;
}

size_t codepoint_count(std::string_view s) { return codepoint_offsets(s).size() - 1; }

std::vector<int64_t> slice_indices(int64_t length, std::optional<int64_t> start,
                                   std::optional<int64_t> stop, std::optional<int64_t> step) {
  const int64_t st = step.value_or(1);
  if (st == 0) fail("slice step cannot be zero");
  // CPython's PySlice_AdjustIndices.
  const auto adjust = [&](std::optional<int64_t> v, int64_t dflt) {
    if (!v) return dflt;
    int64_t x = *v;
    if (x < 0) {
      x += length;
      if (x < 0) x = st < 0 ? -1 : 0;
    } else if (x >= length) {
      x = st < 0 ? length - 1 : length;
    }
    return x;
  };
  const int64_t lo = adjust(start, st < 0 ? length - 1 : 0);
  const int64_t hi = adjust(stop, st < 0 ? -1 : length);
  std::vector<int64_t> out;
  if (st > 0)
    for (int64_t k = lo; k < hi; k += st) out.push_back(k);
  else
    for (int64_t k = lo; k > hi; k += st) out.push_back(k);
  return out;
}

std::string py_strip(std::string_view s, const std::optional<std::string>& chars, bool left, bool right) {
  const std::vector<CodePoint> cps = code_points(s);
  std::vector<uint32_t> set;
  if (chars)
    for (const CodePoint& c : code_points(*chars)) set.push_back(c.cp);
  const auto strip = [&](uint32_t cp) {
    return chars ? std::find(set.begin(), set.end(), cp) != set.end() : py_isspace(cp);
  };
  size_t lo = 0, hi = cps.size();
  if (left)
    while (lo < hi && strip(cps[lo].cp)) ++lo;
  if (right)
    while (hi > lo && strip(cps[hi - 1].cp)) --hi;
  if (lo == hi) return {};
  return std::string(s.substr(cps[lo].begin, cps[hi - 1].end - cps[lo].begin));
}

std::vector<std::string> py_split(std::string_view s, const std::optional<std::string>& sep, int64_t maxsplit) {
  std::vector<std::string> out;
  if (sep) {
    if (sep->empty()) fail("split: empty separator");
    size_t at = 0;
    while (maxsplit < 0 || static_cast<int64_t>(out.size()) < maxsplit) {
      const size_t hit = s.find(*sep, at);
      if (hit == std::string_view::npos) break;
      out.emplace_back(s.substr(at, hit - at));
      at = hit + sep->size();
    }
    out.emplace_back(s.substr(at));
    return out;
  }
  const std::vector<CodePoint> cps = code_points(s);
  size_t k = 0;
  while (true) {
    while (k < cps.size() && py_isspace(cps[k].cp)) ++k;
    if (k == cps.size()) break;
    if (maxsplit >= 0 && static_cast<int64_t>(out.size()) == maxsplit) {
      // The rest, with its trailing whitespace stripped (CPython's split_whitespace).
      out.push_back(py_strip(s.substr(cps[k].begin), std::nullopt, false, true));
      break;
    }
    const size_t begin = k;
    while (k < cps.size() && !py_isspace(cps[k].cp)) ++k;
    out.emplace_back(s.substr(cps[begin].begin, cps[k - 1].end - cps[begin].begin));
  }
  return out;
}

std::string py_replace(std::string_view s, std::string_view old, std::string_view with, int64_t count) {
  std::string out;
  if (old.empty()) {  // Python inserts `with` before every code point and at the end
    const std::vector<size_t> offs = codepoint_offsets(s);
    int64_t done = 0;
    for (size_t k = 0; k + 1 < offs.size(); ++k) {
      if (count < 0 || done < count) {
        out += with;
        ++done;
      }
      out += s.substr(offs[k], offs[k + 1] - offs[k]);
    }
    if (count < 0 || done < count) out += with;
    return out;
  }
  size_t at = 0;
  for (int64_t done = 0; count < 0 || done < count; ++done) {
    const size_t hit = s.find(old, at);
    if (hit == std::string_view::npos) break;
    out += s.substr(at, hit - at);
    out += with;
    at = hit + old.size();
  }
  out += s.substr(at);
  return out;
}

std::string py_upper(std::string_view s) { return icu_case(s, true); }
std::string py_lower(std::string_view s) { return icu_case(s, false); }

std::string py_title(std::string_view s) {
  std::string out;
  bool previous_cased = false;
  for (const CodePoint& c : code_points(s)) {
    const std::string_view text = s.substr(c.begin, c.end - c.begin);
    const bool cased = is_cased(c.cp);
    out += cased ? icu_case(text, !previous_cased) : std::string(text);
    previous_cased = cased;
  }
  return out;
}

std::string py_capitalize(std::string_view s) {
  const std::vector<CodePoint> cps = code_points(s);
  if (cps.empty()) return {};
  return py_upper(s.substr(0, cps[0].end)) + py_lower(s.substr(cps[0].end));
}

std::string jinja_title(std::string_view s) {
  std::string out;
  bool word_start = true;
  for (const CodePoint& c : code_points(s)) {
    const std::string_view text = s.substr(c.begin, c.end - c.begin);
    const bool separator = c.cp == '-' || c.cp == '(' || c.cp == '{' || c.cp == '[' || c.cp == '<' ||
                           py_isspace(c.cp);
    if (separator) out += text;
    else out += icu_case(text, word_start);
    word_start = separator;
  }
  return out;
}

}  // namespace flashmem::jinja
