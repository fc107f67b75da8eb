#include <fmt/format.h>

#include <utility>

#include "model/random_model_deepseek2.h"
#include "util/error.h"

namespace flashmem {

void validate_deepseek2_spec(const RandomModelSpec& s) {
  const RandomModelSpec::Deepseek2& d = s.deepseek2;
  if (s.arch != "deepseek2") {
    const RandomModelSpec::Deepseek2 defaults;
    if (d.q_lora != defaults.q_lora || d.kv_lora != defaults.kv_lora || d.nope_dim != defaults.nope_dim ||
        d.v_head_dim != defaults.v_head_dim || d.dense_layers != defaults.dense_layers ||
        d.experts != defaults.experts || d.experts_used != defaults.experts_used ||
        d.shared_experts != defaults.shared_experts || d.expert_ff != defaults.expert_ff ||
        d.gating != defaults.gating || d.expert_bias || d.norm_weights || d.weights_scale != 0.0 ||
        d.yarn_factor != 0.0 || d.yarn_orig_ctx != 0 || d.yarn_mscale_all_dim != 0.0)
      fail("latent-attention, expert and yarn options are for --arch deepseek2 only");
    return;
  }
  if (s.n_kv_heads != 1) fail("deepseek2 has one latent KV head: --kv-heads 1");
  if (s.head_dim != 0) fail("deepseek2's head dims are --kv-lora, --nope-dim, --rope-dim and --v-head-dim");
  if (s.rope_dim < 2 || s.rope_dim % 2 != 0) fail("deepseek2 needs an even --rope-dim >= 2");
  if (s.rope_freq_factors) fail("llama.cpp ignores rope_freqs.weight for deepseek2");
  if (d.q_lora < 0 || d.kv_lora < 1 || d.nope_dim < 1 || d.v_head_dim < 1 || d.expert_ff < 1)
    fail("deepseek2 ranks and head dims must be positive (q-lora >= 0)");
  if (d.dense_layers < 0 || d.dense_layers > s.n_layers)
    fail("dense layers {} must be in [0, {}]", d.dense_layers, s.n_layers);
  if (d.experts < 1 || d.experts_used < 1 || d.experts_used > d.experts)
    fail("experts {} and used experts {} must satisfy 1 <= used <= experts", d.experts, d.experts_used);
  if (d.shared_experts < 1) fail("llama.cpp needs at least one shared expert for deepseek2");
  if (d.gating != 1 && d.gating != 2) fail("gating func {} must be 1 (softmax) or 2 (sigmoid)", d.gating);
  if (d.weights_scale < 0 || d.yarn_factor < 0 || d.yarn_orig_ctx < 0 || d.yarn_mscale_all_dim < 0)
    fail("expert weight scale and yarn parameters must not be negative");
  if (d.yarn_factor == 0.0 && (d.yarn_orig_ctx != 0 || d.yarn_mscale_all_dim != 0.0))
    fail("yarn parameters need --yarn-factor");
  const int64_t block = dtype_info(s.type).block_elems;
  for (int64_t cols : {d.q_lora, d.kv_lora, d.nope_dim, d.expert_ff, s.n_heads * d.v_head_dim})
    if (cols % block != 0)
      fail("lora ranks, nope dims, expert ff and heads * v-head-dim must be multiples of {} for {}",
           block, dtype_info(s.type).name);
}

void write_deepseek2_model(const RandomModelSpec& s, GgufWriter& w, RandomTensorWriter& g) {
  const RandomModelSpec::Deepseek2& d = s.deepseek2;
  const std::string p = "deepseek2.";
  const int64_t H = s.n_heads, rope = s.rope_dim, qk = d.nope_dim + rope;
  // llama.cpp reads q_lora_rank unless the model has 26/27 layers (its "lite" rule): 0 = attn_q.
  const std::pair<const char*, int64_t> counts[] = {
      {"attention.q_lora_rank", d.q_lora},
      {"attention.kv_lora_rank", d.kv_lora},
      {"attention.key_length", d.kv_lora + rope},  // the cache row: latent | k_pe
      {"attention.value_length", d.kv_lora},       // the value: the latent
      {"attention.key_length_mla", qk},
      {"attention.value_length_mla", d.v_head_dim},
      {"leading_dense_block_count", d.dense_layers},
      {"expert_count", d.experts},
      {"expert_used_count", d.experts_used},
      {"expert_shared_count", d.shared_experts},
      {"expert_feed_forward_length", d.expert_ff},
      {"expert_gating_func", d.gating},
  };
  for (const auto& [key, value] : counts) w.set_u32(p + key, static_cast<uint32_t>(value));
  w.set_bool(p + "expert_weights_norm", d.norm_weights);
  if (d.weights_scale > 0) w.set_f32(p + "expert_weights_scale", static_cast<float>(d.weights_scale));
  if (d.yarn_factor > 0) {
    w.set_string(p + "rope.scaling.type", "yarn");
    w.set_f32(p + "rope.scaling.factor", static_cast<float>(d.yarn_factor));
    if (d.yarn_orig_ctx > 0)
      w.set_u32(p + "rope.scaling.original_context_length", static_cast<uint32_t>(d.yarn_orig_ctx));
    // The converter's spelling: 0.1 · mscale_all_dim (llama.cpp divides by 0.1 again).
    if (d.yarn_mscale_all_dim > 0)
      w.set_f32(p + "rope.scaling.yarn_log_multiplier", static_cast<float>(0.1 * d.yarn_mscale_all_dim));
  }

  g.matrix("token_embd.weight", s.n_vocab, s.dim, s.type);
  for (int64_t i = 0; i < s.n_layers; ++i) {
    auto name = [i](const char* suffix) { return fmt::format("blk.{}.{}", i, suffix); };
    g.vector(name("attn_norm.weight"), s.dim, 1.0f, 0.1f);
    if (d.q_lora > 0) {
      g.matrix(name("attn_q_a.weight"), d.q_lora, s.dim, s.type);
      g.vector(name("attn_q_a_norm.weight"), d.q_lora, 1.0f, 0.1f);
      g.matrix(name("attn_q_b.weight"), H * qk, d.q_lora, s.type);
    } else {
      g.matrix(name("attn_q.weight"), H * qk, s.dim, s.type);
    }
    g.matrix(name("attn_kv_a_mqa.weight"), d.kv_lora + rope, s.dim, s.type);
    g.vector(name("attn_kv_a_norm.weight"), d.kv_lora, 1.0f, 0.1f);
    g.stack(name("attn_k_b.weight"), H, d.kv_lora, d.nope_dim, s.type);
    g.stack(name("attn_v_b.weight"), H, d.v_head_dim, d.kv_lora, s.type);
    g.matrix(name("attn_output.weight"), s.dim, H * d.v_head_dim, s.type);
    g.vector(name("ffn_norm.weight"), s.dim, 1.0f, 0.1f);
    if (i < d.dense_layers) {
      g.matrix(name("ffn_gate.weight"), s.ff_dim, s.dim, s.type);
      g.matrix(name("ffn_up.weight"), s.ff_dim, s.dim, s.type);
      g.matrix(name("ffn_down.weight"), s.dim, s.ff_dim, s.type);
      continue;
    }
    // The router stays f32, as llama.cpp's quantizer keeps ffn_gate_inp.
    g.matrix(name("ffn_gate_inp.weight"), d.experts, s.dim, DType::F32);
    // A bias of ±0.3 changes which experts win for sigmoid probabilities in (0, 1).
    if (d.expert_bias) g.vector(name("exp_probs_b.bias"), d.experts, 0.0f, 0.3f);
    g.stack(name("ffn_gate_exps.weight"), d.experts, d.expert_ff, s.dim, s.type);
    g.stack(name("ffn_up_exps.weight"), d.experts, d.expert_ff, s.dim, s.type);
    g.stack(name("ffn_down_exps.weight"), d.experts, s.dim, d.expert_ff, s.type);
    const int64_t shared_ff = d.shared_experts * d.expert_ff;
    g.matrix(name("ffn_gate_shexp.weight"), shared_ff, s.dim, s.type);
    g.matrix(name("ffn_up_shexp.weight"), shared_ff, s.dim, s.type);
    g.matrix(name("ffn_down_shexp.weight"), s.dim, shared_ff, s.type);
  }
}

}  // namespace flashmem
