#include "model/arch_specs.h"

namespace flashmem {

// DeepSeek-V2 / V2-Lite / V3 (and files converted as `deepseek2`): multi-head latent attention
// with a decoupled RoPE head, adjacent-pair rotation (llama.cpp's LLAMA_ROPE_TYPE_NORM for this
// arch), optional YaRN; a SwiGLU mixture of experts after the leading dense layers. Every
// DeepSeek-V2/V3 config uses rms eps 1e-6 and rope base 10000.
const ArchSpec kDeepseek2Arch = {
    .name = "deepseek2",
    .rope_style = RopeStyle::kAdjacent,
    .qkv_bias = false,
    .default_rms_eps = 1e-6,
    .default_rope_base = 10000.0,
    .latent_moe = true,
};

}  // namespace flashmem
