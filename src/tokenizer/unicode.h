// Unicode helpers for the tokenizers: UTF-8 decoding with llama.cpp's error policy, general
// category flags (from ICU), and the GPT-2 byte <-> printable-codepoint mapping.
#pragma once
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace flashmem {

// Length in bytes of the UTF-8 sequence that starts with `lead` (1 for continuation bytes and
// ASCII): the SentencePiece and BPE symbol splitters step by this, never past the text's end.
size_t utf8_seq_len(uint8_t lead);

// Decodes UTF-8 into codepoints. An invalid or truncated sequence yields U+FFFD and advances one
// byte (llama.cpp's policy), so any byte string decodes without throwing.
std::vector<uint32_t> utf8_decode(std::string_view text);

// Appends the UTF-8 encoding of `cpt` (cpt <= 0x10FFFF; larger values encode U+FFFD).
void utf8_append(std::string& out, uint32_t cpt);

// General-category flags of one codepoint. Exactly one of the category bits is set for an
// assigned codepoint (`undefined` for unassigned ones); `whitespace` is the Unicode White_Space
// property and may accompany a category (e.g. U+0020 is a separator and whitespace).
struct CpFlags {
  bool undefined = false;
  bool letter = false;       // \p{L}
  bool number = false;       // \p{N}
  bool punctuation = false;  // \p{P}
  bool mark = false;         // \p{M}
  bool symbol = false;       // \p{S}
  bool separator = false;    // \p{Z}
  bool control = false;      // \p{C} (Cc, Cf, Co, Cs)
  bool whitespace = false;
  // True for every real codepoint; false only for the "outside the text" sentinel.
  bool any() const {
    return undefined || letter || number || punctuation || mark || symbol || separator ||
           control;
  }
};
CpFlags cp_flags(uint32_t cpt);

// GPT-2 byte-level BPE alphabet: every byte maps to one printable codepoint (printable Latin-1
// bytes map to themselves, the other 68 bytes to U+0100.. in order).
uint32_t byte_to_cp(uint8_t byte);
// Inverse of byte_to_cp; returns -1 for a codepoint that is not in the alphabet.
int cp_to_byte(uint32_t cpt);

}  // namespace flashmem
