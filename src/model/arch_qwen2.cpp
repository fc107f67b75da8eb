#include "model/arch_specs.h"

namespace flashmem {

// Qwen2 / Qwen2.5: NEOX-style RoPE, biases on Q, K and V. Defaults from the Qwen2 configs:
// eps 1e-6, rope base 1e6.
const ArchSpec kQwen2Arch = {
    .name = "qwen2",
    .rope_style = RopeStyle::kNeox,
    .qkv_bias = true,
    .default_rms_eps = 1e-6,
    .default_rope_base = 1000000.0,
};

}  // namespace flashmem
