// Whole-file reads for the small text inputs of the commands (prompts, corpora, result files).
#pragma once
#include <string>
#include <string_view>

namespace flashmem {

// The bytes of `path`. Throws Error "cannot open WHAT 'PATH'" / "cannot read WHAT 'PATH'"
// (`what` names the file's role, e.g. "prompt file"; may be empty).
std::string read_file(const std::string& path, std::string_view what = "");

}  // namespace flashmem
