// libFuzzer target: a chat template from a model file (chat/chat_template.h): the input is the
// template's text, parsed and rendered with a fixed conversation, with and without the
// generation prompt. Syntax errors, the template's own raise_exception and the interpreter's
// limits are rejections (flashmem::Error); anything a sanitizer reports, a hang or a crash is a
// finding.
#include <cstdint>
#include <string>
#include <vector>

#include "chat/chat_template.h"
#include "util/error.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static const std::vector<flashmem::chat::ChatMessage> kMessages = {
      {"system", "Be brief."}, {"user", "Hi \xF0\x9F\x91\x8B"}, {"assistant", "  Hello  "}, {"user", "Bye"}};
  try {
    const flashmem::chat::ChatTemplate t(std::string(reinterpret_cast<const char*>(data), size), "<s>", "</s>");
    for (bool add : {true, false}) {
      try {
        t.render(kMessages, add);
      } catch (const flashmem::Error&) {
      }
    }
  } catch (const flashmem::Error&) {
  }
  return 0;
}
