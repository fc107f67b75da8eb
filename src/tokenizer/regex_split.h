// One pre-tokenizer regex, as llama.cpp's table writes it (ECMAScript syntax plus \p{L}, \p{N},
// \p{P}, \p{S}, \p{M}), run with ICU's regex engine under llama.cpp's character-class rules:
//   - the text is matched with every non-ASCII White_Space codepoint replaced by U+000B, and \s
//     is [\t\n\v\f\r ] (so \s covers Unicode White_Space, and a literal non-ASCII space in a
//     bracket never matches, as in llama.cpp);
//   - \p{L} \p{N} \p{P} \p{M} are the Unicode general categories; \p{S} leaves out '~', which
//     llama.cpp's ASCII symbol table lacks;
//   - other \p{..} names, \w, \b and '.' are rejected (no table regex uses them).
// Splitting follows llama.cpp: each piece of the previous stage is a separate subject (look-ahead
// and $ stop at its end); matches and the gaps between them become pieces.
#pragma once
#include <unicode/regex.h>
#include <unicode/unistr.h>

#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace flashmem {

// The text as ICU sees it, with the maps between UTF-16 units and codepoint indices.
struct MatchText {
  icu::UnicodeString utf16;        // non-ASCII whitespace replaced by U+000B
  std::vector<int32_t> cp_to_u16;  // [n_codepoints + 1] UTF-16 offset of each codepoint
  std::vector<int32_t> u16_to_cp;  // [utf16 length + 1] codepoint index of each UTF-16 offset
};
MatchText make_match_text(std::span<const uint32_t> cpts);

// Translates a table regex into ICU syntax (exposed for tests). Throws Error on what the
// translator does not support, naming the construct.
std::string to_icu_pattern(std::string_view pattern);

class SplitRegex {
 public:
  // Compiles `pattern` (table dialect); throws Error on a bad or unsupported pattern.
  explicit SplitRegex(std::string_view pattern);
  // Re-splits each piece of `in` (lengths in codepoints, summing to the text's length) into
  // `out`. Thread-safe: each call makes its own matcher.
  void split(const MatchText& text, const std::vector<size_t>& in, std::vector<size_t>& out) const;

 private:
  std::string source_;
  std::shared_ptr<const icu::RegexPattern> pattern_;
};

}  // namespace flashmem
