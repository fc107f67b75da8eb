#include "model/arch_specs.h"

namespace flashmem {

// Qwen3 (dense): NEOX-style RoPE, no QKV biases, a per-head RMSNorm of q and k before RoPE
// (attn_q_norm / attn_k_norm, [head_dim] each); head_dim from qwen3.attention.key_length (128 in
// every Qwen3, whatever D / n_heads). Defaults from the Qwen3 configs: eps 1e-6, rope base 1e6.
const ArchSpec kQwen3Arch = {
    .name = "qwen3",
    .rope_style = RopeStyle::kNeox,
    .qkv_bias = false,
    .default_rms_eps = 1e-6,
    .default_rope_base = 1000000.0,
    .qk_norm = true,
};

}  // namespace flashmem
