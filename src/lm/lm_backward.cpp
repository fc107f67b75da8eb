// Backward pass of lm_forward.h: reverse order of forward(), reading the saved activations.
#include <algorithm>

#include "lm/lm_forward.h"
#include "lm/lm_ops.h"

namespace flashmem::lm {

void backward(const LmConfig& c, const ParamLayout& layout, const float* params,
              const RopeTable& rope, std::span<const int32_t> tokens,
              std::span<const Target> targets, Activations& acts, float* grads) {
  const int64_t T = acts.n_tokens;
  const int64_t D = c.dim, Q = c.q_dim(), KV = c.kv_dim(), F = c.ff_dim, V = c.n_vocab;
  const int64_t H = c.n_heads, KVH = c.n_kv_heads, hd = c.head_dim();
  const auto n = static_cast<int64_t>(targets.size());

  // ---- cross-entropy + output head: dz = weight · (softmax(z) - onehot(target))
  std::vector<float> dz(acts.probs_out.begin(), acts.probs_out.begin() + n * V);  // [n, V]
  for (int64_t i = 0; i < n; ++i) {
    const Target& tg = targets[static_cast<size_t>(i)];
    dz[i * V + tg.token] -= 1.0f;
    for (int64_t j = 0; j < V; ++j) dz[i * V + j] *= tg.weight;
  }
  std::vector<float> d_xn_sel(static_cast<size_t>(n * D));  // [n, D]
  // acts.scratch_c still holds the gathered head inputs [n, D] from forward().
  linear_backward(params + layout.output, acts.scratch_c.data(), dz.data(), d_xn_sel.data(),
                  grads + layout.output, n, V, D, acts.scratch_d);
  std::vector<float> d_xn(static_cast<size_t>(T * D), 0.0f);  // [T, D]
  for (int64_t i = 0; i < n; ++i)
    for (int64_t j = 0; j < D; ++j) d_xn[targets[static_cast<size_t>(i)].pos * D + j] += d_xn_sel[i * D + j];
  std::vector<float> dx(static_cast<size_t>(T * D), 0.0f);  // [T, D] gradient of the residual
  rms_norm_backward(acts.x_final.data(), params + layout.output_norm, acts.inv_rms_f.data(),
                    d_xn.data(), dx.data(), grads + layout.output_norm, T, D);

  std::vector<float> d_act(static_cast<size_t>(T * F)), d_gate(d_act.size()), d_up(d_act.size());
  std::vector<float> d_tmp(static_cast<size_t>(T * D));  // [T, D]
  std::vector<float> d_attn(static_cast<size_t>(T * Q)), dq(d_attn.size());
  std::vector<float> dk(static_cast<size_t>(T * KV)), dv(dk.size());
  for (int64_t il = c.n_layers - 1; il >= 0; --il) {
    const LayerOffsets& o = layout.layers[static_cast<size_t>(il)];
    const LayerActivations& a = acts.layers[static_cast<size_t>(il)];
    // ---- feed-forward block (dx is d x_out; the residual passes it to x_mid unchanged)
    linear_backward(params + o.w_down, a.act.data(), dx.data(), d_act.data(), grads + o.w_down,
                    T, D, F, acts.scratch_d);
    swiglu_backward(a.gate.data(), a.up.data(), d_act.data(), d_gate.data(), d_up.data(), T * F);
    linear_backward(params + o.w_gate, a.xn2.data(), d_gate.data(), d_tmp.data(),
                    grads + o.w_gate, T, F, D, acts.scratch_d);
    std::vector<float>& d_xn2 = d_xn;  // reuse: [T, D]
    std::copy(d_tmp.begin(), d_tmp.end(), d_xn2.begin());
    linear_backward(params + o.w_up, a.xn2.data(), d_up.data(), d_tmp.data(), grads + o.w_up, T,
                    F, D, acts.scratch_d);
    for (int64_t i = 0; i < T * D; ++i) d_xn2[i] += d_tmp[i];
    rms_norm_backward(a.x_mid.data(), params + o.ffn_norm, a.inv_rms2.data(), d_xn2.data(),
                      dx.data(), grads + o.ffn_norm, T, D);
    // ---- attention block (dx is now d x_mid)
    linear_backward(params + o.wo, a.attn.data(), dx.data(), d_attn.data(), grads + o.wo, T, D,
                    Q, acts.scratch_d);
    attention_backward(a.q.data(), a.k.data(), a.v.data(), a.probs.data(), d_attn.data(),
                       dq.data(), dk.data(), dv.data(), T, H, KVH, hd, acts.scratch_b);
    rope_apply(dq.data(), T, H, hd, rope, true);
    rope_apply(dk.data(), T, KVH, hd, rope, true);
    std::vector<float>& d_xn1 = d_xn;
    linear_backward(params + o.wq, a.xn1.data(), dq.data(), d_xn1.data(), grads + o.wq, T, Q, D,
                    acts.scratch_d);
    linear_backward(params + o.wk, a.xn1.data(), dk.data(), d_tmp.data(), grads + o.wk, T, KV, D,
                    acts.scratch_d);
    for (int64_t i = 0; i < T * D; ++i) d_xn1[i] += d_tmp[i];
    linear_backward(params + o.wv, a.xn1.data(), dv.data(), d_tmp.data(), grads + o.wv, T, KV, D,
                    acts.scratch_d);
    for (int64_t i = 0; i < T * D; ++i) d_xn1[i] += d_tmp[i];
    rms_norm_backward(a.x_in.data(), params + o.attn_norm, a.inv_rms1.data(), d_xn1.data(),
                      dx.data(), grads + o.attn_norm, T, D);
  }
  // ---- embedding: scatter-add the residual gradient into the looked-up rows
  for (int64_t t = 0; t < T; ++t) {
    float* g = grads + layout.tok_embd + tokens[static_cast<size_t>(t)] * D;
    for (int64_t j = 0; j < D; ++j) g[j] += dx[t * D + j];
  }
}

}  // namespace flashmem::lm
