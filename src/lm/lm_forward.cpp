#include "lm/lm_forward.h"

#include <algorithm>
#include <cmath>

#include "lm/lm_ops.h"
#include "tensor/rope.h"
#include "util/error.h"

namespace flashmem::lm {

RopeTable make_rope_table(const LmConfig& c, int64_t n_pos) {
  RopeTable r;
  r.n_pos = n_pos;
  r.half = c.head_dim() / 2;
  r.cos.resize(static_cast<size_t>(n_pos * r.half));
  r.sin.resize(r.cos.size());
  // The engine's RoPE (tensor/rope.h): a model trained here rotates exactly as it will run.
  const std::vector<double> freqs = rope_frequencies(c.rope_base, c.head_dim());
  for (int64_t t = 0; t < n_pos; ++t)
    rope_angles(freqs, t, &r.cos[static_cast<size_t>(t * r.half)], &r.sin[static_cast<size_t>(t * r.half)]);
  return r;
}

namespace {

void resize(std::vector<float>& v, int64_t n) { v.resize(static_cast<size_t>(n)); }

}  // namespace

double forward(const LmConfig& c, const ParamLayout& layout, const float* params,
               const RopeTable& rope, std::span<const int32_t> tokens,
               std::span<const Target> targets, Activations& acts, float* logits) {
  const auto T = static_cast<int64_t>(tokens.size());
  const int64_t D = c.dim, Q = c.q_dim(), KV = c.kv_dim(), F = c.ff_dim, V = c.n_vocab;
  const int64_t H = c.n_heads, KVH = c.n_kv_heads, hd = c.head_dim();
  const auto eps = static_cast<float>(c.rms_eps);
  if (T < 1 || T > rope.n_pos) fail("sequence of {} tokens: must be in [1, {}]", T, rope.n_pos);
  acts.n_tokens = T;
  acts.layers.resize(static_cast<size_t>(c.n_layers));

  // x[T, D] = token_embd[tokens]
  std::vector<float>* x = &acts.layers[0].x_in;
  resize(*x, T * D);
  for (int64_t t = 0; t < T; ++t) {
    const int32_t id = tokens[static_cast<size_t>(t)];
    if (id < 0 || id >= V) fail("token id {} is outside the vocabulary ({})", id, V);
    std::copy_n(params + layout.tok_embd + id * D, D, x->data() + t * D);
  }
  for (int64_t il = 0; il < c.n_layers; ++il) {
    const LayerOffsets& o = layout.layers[static_cast<size_t>(il)];
    LayerActivations& a = acts.layers[static_cast<size_t>(il)];
    if (il > 0) {
      resize(a.x_in, T * D);
      // the previous layer's output is its x_mid + FFN: stored in acts.scratch_a
      std::copy_n(acts.scratch_a.data(), T * D, a.x_in.data());
    }
    resize(a.inv_rms1, T);
    resize(a.xn1, T * D);
    resize(a.q, T * Q);
    resize(a.k, T * KV);
    resize(a.v, T * KV);
    resize(a.probs, H * T * T);
    resize(a.attn, T * Q);
    resize(a.x_mid, T * D);
    resize(a.inv_rms2, T);
    resize(a.xn2, T * D);
    resize(a.gate, T * F);
    resize(a.up, T * F);
    resize(a.act, T * F);

    // ---- attention block: x_mid = x_in + Wo · attn(RoPE(Wq xn1), RoPE(Wk xn1), Wv xn1)
    rms_norm_forward(a.x_in.data(), params + o.attn_norm, a.xn1.data(), a.inv_rms1.data(), T, D, eps);
    linear_forward(params + o.wq, a.xn1.data(), a.q.data(), T, Q, D);
    linear_forward(params + o.wk, a.xn1.data(), a.k.data(), T, KV, D);
    linear_forward(params + o.wv, a.xn1.data(), a.v.data(), T, KV, D);
    rope_apply(a.q.data(), T, H, hd, rope, false);
    rope_apply(a.k.data(), T, KVH, hd, rope, false);
    attention_forward(a.q.data(), a.k.data(), a.v.data(), a.probs.data(), a.attn.data(), T, H,
                      KVH, hd, acts.scratch_b);
    linear_forward(params + o.wo, a.attn.data(), a.x_mid.data(), T, D, Q);
    for (int64_t i = 0; i < T * D; ++i) a.x_mid[i] += a.x_in[i];

    // ---- feed-forward block: x_out = x_mid + W_down · (silu(W_gate xn2) ⊙ W_up xn2)
    rms_norm_forward(a.x_mid.data(), params + o.ffn_norm, a.xn2.data(), a.inv_rms2.data(), T, D, eps);
    linear_forward(params + o.w_gate, a.xn2.data(), a.gate.data(), T, F, D);
    linear_forward(params + o.w_up, a.xn2.data(), a.up.data(), T, F, D);
    swiglu_forward(a.gate.data(), a.up.data(), a.act.data(), T * F);
    resize(acts.scratch_a, T * D);
    linear_forward(params + o.w_down, a.act.data(), acts.scratch_a.data(), T, D, F);
    for (int64_t i = 0; i < T * D; ++i) acts.scratch_a[i] += a.x_mid[i];
  }
  acts.x_final = acts.scratch_a;
  resize(acts.inv_rms_f, T);
  resize(acts.xn_f, T * D);
  rms_norm_forward(acts.x_final.data(), params + layout.output_norm, acts.xn_f.data(),
                   acts.inv_rms_f.data(), T, D, eps);

  // Output head only at the target positions: z[n, V] = W_out · xn_f[pos].
  const auto n = static_cast<int64_t>(targets.size());
  resize(acts.scratch_c, n * D);
  for (int64_t i = 0; i < n; ++i) {
    const Target& tg = targets[static_cast<size_t>(i)];
    if (tg.pos < 0 || tg.pos >= T) fail("target position {} is outside [0, {})", tg.pos, T);
    if (tg.token < 0 || tg.token >= V) fail("target token {} is outside the vocabulary", tg.token);
    std::copy_n(acts.xn_f.data() + tg.pos * D, D, acts.scratch_c.data() + i * D);
  }
  resize(acts.probs_out, n * V);
  linear_forward(params + layout.output, acts.scratch_c.data(), acts.probs_out.data(), n, V, D);
  if (logits != nullptr) std::copy_n(acts.probs_out.data(), n * V, logits);
  double loss = 0;
  for (int64_t i = 0; i < n; ++i) {
    float* z = acts.probs_out.data() + i * V;
    const float mx = *std::max_element(z, z + V);
    double sum = 0;
    for (int64_t j = 0; j < V; ++j) sum += (z[j] = std::exp(z[j] - mx));
    const auto inv = static_cast<float>(1.0 / sum);
    for (int64_t j = 0; j < V; ++j) z[j] *= inv;
    const Target& tg = targets[static_cast<size_t>(i)];
    loss -= tg.weight * std::log(std::max(static_cast<double>(z[tg.token]), 1e-30));
  }
  return loss;
}

}  // namespace flashmem::lm
