#include "model/arch_specs.h"

namespace flashmem {

// Phi-3 / Phi-3.5 / Phi-4 (dense): NEOX-style RoPE over phi3.rope.dimension_count dims of each
// head (partial rotary when smaller than head_dim), fused attn_qkv [Q + 2 KV, D] and fused
// ffn_up [2F, D] holding the gate rows then the up rows (the loader splits both, see
// model_load.cpp). Its sliding_window key is ignored, as llama.cpp does (its converters wrote
// wrong values). Defaults from Phi-3-mini: eps 1e-5, rope base 10000.
const ArchSpec kPhi3Arch = {
    .name = "phi3",
    .rope_style = RopeStyle::kNeox,
    .qkv_bias = false,
    .default_rms_eps = 1e-5,
    .default_rope_base = 10000.0,
    .fused_projections = true,
};

}  // namespace flashmem
