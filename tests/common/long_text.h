// A long mixed-script document for tokenizer tests and benchmarks: one paragraph of ASCII
// prose, digits, punctuation, accented Latin, Japanese and an emoji, repeated up to min_bytes.
#pragma once
#include <string>

namespace flashmem::test {

inline std::string long_text(size_t min_bytes) {
  const std::string para =
      "The quick brown fox jumps over the lazy dog. In 1984, 42 engineers wrote 3.14159 lines "
      "of C++ code; they said: \"it's fine\"! Ünïcödé, 日本語のテキスト, and emoji 🚀 too.\n";
  std::string s;
  while (s.size() < min_bytes) s += para;
  return s;
}

}  // namespace flashmem::test
