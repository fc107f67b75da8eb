// Text from a file or a user as it appears in an error message.
#pragma once
#include <cstddef>
#include <string>
#include <string_view>

namespace flashmem {

// `text` with control bytes (< 0x20, 0x7f) and bytes that are not well-formed UTF-8 escaped as
// \xNN, cut after about max_shown bytes ("... (N bytes)" appended), so that a message about a
// 1 GB key or a binary line is neither 1 GB long nor able to garble the terminal. The default,
// 80 bytes, is longer than any real GGUF key or tensor name.
std::string printable(std::string_view text, size_t max_shown = 80);

}  // namespace flashmem
