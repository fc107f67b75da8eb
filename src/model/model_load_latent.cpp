// deepseek2 tensors per block, as llama.cpp (81ff7abe, src/models/deepseek2.cpp) names and
// shapes them: attn_q_a / attn_q_a_norm / attn_q_b (or attn_q without q_lora), attn_kv_a_mqa,
// attn_kv_a_norm, the split attn_k_b / attn_v_b, attn_output; ffn_{gate,up,down} on the leading
// dense layers, then ffn_gate_inp, optional exp_probs_b.bias, ffn_{gate,up,down}_exps and
// ffn_{gate,up,down}_shexp (a fused ffn_gate_up_exps is refused, naming it).
#include <fmt/format.h>

#include "model/model_bind.h"
#include "util/error.h"

namespace flashmem {
namespace {

void bind_experts(const GgufFile& f, const ModelConfig& c, int64_t layer, ExpertWeights& e) {
  auto name = [layer](const char* suffix) { return fmt::format("blk.{}.{}", layer, suffix); };
  const MixtureOfExperts& m = c.moe;
  const int64_t D = c.dim, E = m.n_experts, F = m.expert_ff;
  e.router = bind_matrix(f, name("ffn_gate_inp.weight"), E, D);
  if (f.find_tensor(name("exp_probs_b.bias")) != nullptr)
    e.selection_bias = bind_vector(f, name("exp_probs_b.bias"), E);
  if (f.find_tensor(name("ffn_gate_up_exps.weight")) != nullptr)
    fail("{}: tensor '{}' (fused expert gate|up) is not supported", f.name(),
         name("ffn_gate_up_exps.weight"));
  e.gate = bind_stack(f, name("ffn_gate_exps.weight"), E, F, D);
  e.up = bind_stack(f, name("ffn_up_exps.weight"), E, F, D);
  e.down = bind_stack(f, name("ffn_down_exps.weight"), E, D, F);
  if (m.n_shared > 0) {
    const int64_t S = m.n_shared * F;
    e.shared_gate = bind_matrix(f, name("ffn_gate_shexp.weight"), S, D);
    e.shared_up = bind_matrix(f, name("ffn_up_shexp.weight"), S, D);
    e.shared_down = bind_matrix(f, name("ffn_down_shexp.weight"), D, S);
  }
}

}  // namespace

void bind_latent_moe_layer(const GgufFile& f, const ModelConfig& c, int64_t layer, LayerWeights& l) {
  auto name = [layer](const char* suffix) { return fmt::format("blk.{}.{}", layer, suffix); };
  const LatentAttention& a = c.mla;
  const int64_t D = c.dim, H = c.n_heads, qk = a.nope_dim + c.rope_dim;
  LatentAttentionWeights& w = l.mla;
  if (a.q_lora > 0) {
    w.wq_a = bind_matrix(f, name("attn_q_a.weight"), a.q_lora, D);
    w.q_a_norm = bind_vector(f, name("attn_q_a_norm.weight"), a.q_lora);
    w.wq_b = bind_matrix(f, name("attn_q_b.weight"), H * qk, a.q_lora);
  } else {
    l.wq = bind_matrix(f, name("attn_q.weight"), H * qk, D);
  }
  w.wkv_a = bind_matrix(f, name("attn_kv_a_mqa.weight"), a.kv_lora + c.rope_dim, D);
  w.kv_a_norm = bind_vector(f, name("attn_kv_a_norm.weight"), a.kv_lora);
  if (f.find_tensor(name("attn_kv_b.weight")) != nullptr && f.find_tensor(name("attn_k_b.weight")) == nullptr)
    fail("{}: tensor '{}' (the legacy unsplit MLA form) is not supported: convert the model again "
         "with a current llama.cpp (attn_k_b / attn_v_b)", f.name(), name("attn_kv_b.weight"));
  w.wk_b = bind_stack(f, name("attn_k_b.weight"), H, a.kv_lora, a.nope_dim);
  w.wv_b = bind_stack(f, name("attn_v_b.weight"), H, a.v_head_dim, a.kv_lora);
  l.wo = bind_matrix(f, name("attn_output.weight"), D, H * a.v_head_dim);
  l.ffn_norm = bind_vector(f, name("ffn_norm.weight"), D);
  if (c.moe.is_moe_layer(layer)) {
    bind_experts(f, c, layer, l.moe);
  } else {
    bind_dense_ffn(f, layer, c.ff_dim, D, l);
  }
}

uint64_t latent_moe_decode_bytes(const ModelConfig& c, const LayerWeights& l) {
  const LatentAttentionWeights& w = l.mla;
  auto stack_bytes = [](const MatrixStack& s, int64_t n) {
    return s.data == nullptr ? 0 : matrix_bytes(s.at(0)) * static_cast<uint64_t>(n);
  };
  uint64_t total = matrix_bytes(w.wq_a) + matrix_bytes(w.wq_b) + matrix_bytes(w.wkv_a);
  total += stack_bytes(w.wk_b, w.wk_b.n) + stack_bytes(w.wv_b, w.wv_b.n);
  if (w.kv_a_norm != nullptr) total += (c.mla.kv_lora + c.mla.q_lora) * sizeof(float);
  const ExpertWeights& e = l.moe;
  total += matrix_bytes(e.router) + matrix_bytes(e.shared_gate) + matrix_bytes(e.shared_up) +
           matrix_bytes(e.shared_down);
  const int64_t used = c.moe.n_used;
  total += stack_bytes(e.gate, used) + stack_bytes(e.up, used) + stack_bytes(e.down, used);
  return total;
}

}  // namespace flashmem
