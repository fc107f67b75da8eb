#include "model/arch_specs.h"

namespace flashmem {

// Files that name their architecture `mistral` (llama.cpp's converter writes Mistral 7B as
// `llama`): the llama spec under another name, mistral.attention.sliding_window (4096 in Mistral
// 7B v0.1) applied on every layer. (kLlamaArch is constant-initialized, so it is set before this
// dynamic initializer runs.)
const ArchSpec kMistralArch = [] {
  ArchSpec spec = kLlamaArch;
  spec.name = "mistral";
  return spec;
}();

}  // namespace flashmem
