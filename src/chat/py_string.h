// Python str semantics on UTF-8 text, as Jinja2 templates see strings: lengths, indices and
// slices count code points; strip() without arguments removes what str.isspace() calls
// whitespace; upper/lower use full Unicode case mapping (ICU, root locale).
// Invalid UTF-8 bytes count as one code point each (templates and messages come from files).
#pragma once
#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace flashmem::jinja {

// Bytes of whitespace (str.isspace) at the start of s[at:].
size_t py_space_prefix(std::string_view s, size_t at);

// Byte offset of every code point of `s`, followed by s.size().
std::vector<size_t> codepoint_offsets(std::string_view s);
size_t codepoint_count(std::string_view s);

// Python's slice(start, stop, step).indices(length), expanded: the selected indices in order.
// Throws Error when step is 0.
std::vector<int64_t> slice_indices(int64_t length, std::optional<int64_t> start,
                                   std::optional<int64_t> stop, std::optional<int64_t> step);

// str.strip / lstrip / rstrip: `chars` absent = Unicode whitespace; present = those code points.
std::string py_strip(std::string_view s, const std::optional<std::string>& chars, bool left, bool right);
// str.split(sep, maxsplit): sep absent = runs of whitespace; maxsplit < 0 = no limit.
// Throws Error on an empty separator (Python's ValueError).
std::vector<std::string> py_split(std::string_view s, const std::optional<std::string>& sep, int64_t maxsplit);
// str.replace(old, new, count): count < 0 = all.
std::string py_replace(std::string_view s, std::string_view old, std::string_view with, int64_t count);
std::string py_upper(std::string_view s);
std::string py_lower(std::string_view s);
// str.title(): a cased letter after an uncased character is upper-cased, the others lowered.
std::string py_title(std::string_view s);
// str.capitalize(): the first character upper-cased, the rest lowered.
std::string py_capitalize(std::string_view s);
// Jinja's `title` filter: words start after '-', whitespace or an opening bracket; each word's
// first character upper-cased, the rest lowered.
std::string jinja_title(std::string_view s);

}  // namespace flashmem::jinja
