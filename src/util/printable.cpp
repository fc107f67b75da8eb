#include "util/printable.h"

#include <fmt/format.h>

namespace flashmem {
namespace {

// Length of the well-formed UTF-8 sequence starting at text[k] (2 to 4 bytes; no overlong
// forms, surrogates or code points above U+10FFFF), or 0 if there is none.
size_t utf8_sequence(std::string_view text, size_t k) {
  const auto at = [&](size_t i) { return static_cast<unsigned char>(text[i]); };
  const unsigned char c = at(k);
  size_t n = 0;
  unsigned char lo = 0x80, hi = 0xbf;  // allowed range of the second byte
  if (c >= 0xc2 && c <= 0xdf) n = 2;
  else if (c >= 0xe0 && c <= 0xef) n = 3, lo = c == 0xe0 ? 0xa0 : 0x80, hi = c == 0xed ? 0x9f : 0xbf;
  else if (c >= 0xf0 && c <= 0xf4) n = 4, lo = c == 0xf0 ? 0x90 : 0x80, hi = c == 0xf4 ? 0x8f : 0xbf;
  else return 0;
  if (k + n > text.size() || at(k + 1) < lo || at(k + 1) > hi) return 0;
  for (size_t i = 2; i < n; ++i)
    if (at(k + i) < 0x80 || at(k + i) > 0xbf) return 0;
  return n;
}

}  // namespace

std::string printable(std::string_view text, size_t max_shown) {
  std::string out;
  size_t k = 0;
  while (k < text.size() && k < max_shown) {
    const auto c = static_cast<unsigned char>(text[k]);
    if (c >= 0x20 && c < 0x7f) {
      out += static_cast<char>(c);
      ++k;
    } else if (const size_t n = c >= 0x80 ? utf8_sequence(text, k) : 0; n > 0) {
      out.append(text.substr(k, n));  // a whole character, shown as itself
      k += n;
    } else {
      out += fmt::format("\\x{:02x}", c);
      ++k;
    }
  }
  if (text.size() > max_shown) out += fmt::format("... ({} bytes)", text.size());
  return out;
}

}  // namespace flashmem
