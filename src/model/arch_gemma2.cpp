#include "model/arch_specs.h"

namespace flashmem {

// Gemma 2: embeddings scaled by √D, RMSNorm of each block's output (attn_post_norm,
// ffn_post_norm) before the residual add, GeGLU feed-forward with tanh GELU, tied output,
// attention scores and final logits soft-capped (caps 50 and 30 in every Gemma 2 config, also
// llama.cpp's defaults), a sliding window of 4096 on the even layers (period 2), NEOX-style RoPE.
// The norm gains in GGUF already hold Gemma's (1 + w). Defaults: eps 1e-6, rope base 10000.
const ArchSpec kGemma2Arch = {
    .name = "gemma2",
    .rope_style = RopeStyle::kNeox,
    .qkv_bias = false,
    .default_rms_eps = 1e-6,
    .default_rope_base = 10000.0,
    .post_norms = true,
    .scale_embeddings = true,
    .ffn_activation = FfnActivation::kGeluTanh,
    .default_attn_softcap = 50.0,
    .default_final_softcap = 30.0,
    .window_layers = WindowLayers::kPattern,
    .default_window = 4096,
    .default_window_period = 2,
    .embd_per_head_scale_layers = 46,
    .always_tied = true,
};

}  // namespace flashmem
