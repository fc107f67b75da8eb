#include "model/arch_specs.h"

namespace flashmem {

// Files that name their architecture `mistral` (llama.cpp's converter writes Mistral 7B as
// `llama`): the llama layout and math, with mistral.attention.sliding_window (4096 in Mistral 7B
// v0.1) applied on every layer. Defaults from Mistral 7B's config: eps 1e-5, rope base 10000.
const ArchSpec kMistralArch = {
    .name = "mistral",
    .rope_style = RopeStyle::kAdjacent,
    .qkv_bias = false,
    .default_rms_eps = 1e-5,
    .default_rope_base = 10000.0,
    .window_layers = WindowLayers::kAll,
};

}  // namespace flashmem
