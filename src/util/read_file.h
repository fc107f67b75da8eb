// Whole-file reads for the small text inputs of the commands (prompts, corpora, result files).
#pragma once
#include <string>
#include <string_view>

namespace flashmem {

// The bytes of the regular file `path` (util/input_file.h: a directory or FIFO is refused, never
// read as empty or waited on). Throws Error "cannot open WHAT 'PATH': why" / "cannot read ..."
// (`what` names the file's role, e.g. "prompt file"; may be empty).
std::string read_file(const std::string& path, std::string_view what = "");

}  // namespace flashmem
