// Unicode helpers for the tokenizers: UTF-8 decoding with llama.cpp's error policy, the
// White_Space property (from ICU), and the GPT-2 byte <-> printable-codepoint mapping.
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

// The Unicode White_Space property (from ICU): what \s means in the pre-tokenizer regexes.
bool is_unicode_whitespace(uint32_t cpt);

// GPT-2 byte-level BPE alphabet: every byte maps to one printable codepoint (printable Latin-1
// bytes map to themselves, the other 68 bytes to U+0100.. in order).
uint32_t byte_to_cp(uint8_t byte);
// Inverse of byte_to_cp; returns -1 for a codepoint that is not in the alphabet.
int cp_to_byte(uint32_t cpt);

}  // namespace flashmem
