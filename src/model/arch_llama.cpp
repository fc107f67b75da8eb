#include "model/arch_specs.h"

namespace flashmem {

// Llama 1/2/3, Mistral 7B (converted as `llama`), TinyLlama, stories*: adjacent-pair RoPE, no
// biases; a file with llama.attention.sliding_window > 0 attends through that window on every layer.
// Defaults are llama.cpp's: eps 1e-5 (Llama 2), rope base 10000 (original Llama).
const ArchSpec kLlamaArch = {
    .name = "llama",
    .rope_style = RopeStyle::kAdjacent,
    .qkv_bias = false,
    .default_rms_eps = 1e-5,
    .default_rope_base = 10000.0,
    .window_layers = WindowLayers::kAll,
};

}  // namespace flashmem
