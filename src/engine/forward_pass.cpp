#include "engine/forward_pass.h"

#include <algorithm>
#include <array>
#include <cmath>

#include "tensor/kernels.h"
#include "tensor/rope.h"
#include "util/error.h"
#include "util/timer.h"

namespace flashmem {

void activate_mul(FfnActivation act, float* gate, const float* up, int64_t n) {
  switch (act) {
    case FfnActivation::kSilu:
      for (int64_t i = 0; i < n; ++i) gate[i] = gate[i] / (1.0f + std::exp(-gate[i])) * up[i];
      break;
    case FfnActivation::kGeluTanh: {
      // The tanh approximation of GELU that Gemma was trained with: √(2/π) and 0.044715 are its
      // constants.
      constexpr float kSqrt2OverPi = 0.7978845608028654f, kCubic = 0.044715f;
      for (int64_t i = 0; i < n; ++i) {
        const float x = gate[i];
        gate[i] = 0.5f * x * (1.0f + std::tanh(kSqrt2OverPi * x * (1.0f + kCubic * x * x))) * up[i];
      }
      break;
    }
  }
}

namespace {

// x[rows, D] += RMSNorm(y) · weight when the arch normalises block outputs (weight != nullptr),
// else x += y. y is normalised in place.
void add_block_output(float* x, float* y, const float* post_norm, int64_t rows, int64_t D, float eps) {
  if (post_norm != nullptr)
    for (int64_t i = 0; i < rows; ++i) rms_norm(&y[i * D], post_norm, &y[i * D], D, eps);
  for (int64_t j = 0; j < rows * D; ++j) x[j] += y[j];
}

// Final logit soft-capping cap · tanh(l / cap) of n logits (cap 0: none).
void soft_cap_logits(float* logits, int64_t n, double cap) {
  if (cap <= 0) return;
  const auto f = static_cast<float>(cap);
  for (int64_t i = 0; i < n; ++i) logits[i] = f * std::tanh(logits[i] / f);
}

}  // namespace

ForwardPass::ForwardPass(const Model& model, ThreadPool& pool, ForwardTimes& times)
    : model_(model), pool_(pool), times_(times) {
  const ModelConfig& c = model_.config();
  rope_freqs_ = rope_frequencies(c.rope_base, c.rope_dim);
  if (const float* factors = model_.weights().rope_freq_factors)
    for (size_t i = 0; i < rope_freqs_.size(); ++i) rope_freqs_[i] /= factors[i];
  if (c.yarn.enabled())
    yarn_scale_frequencies(rope_freqs_, c.rope_dim, c.rope_base, c.yarn.factor, c.yarn.orig_ctx,
                           c.yarn.beta_fast, c.yarn.beta_slow);
  rope_cos_.resize(rope_freqs_.size());
  rope_sin_.resize(rope_freqs_.size());
}

void ForwardPass::resize(int64_t rows) {
  const ModelConfig& c = model_.config();
  const auto R = static_cast<size_t>(rows);
  if (x_.size() >= R * c.dim) return;
  x_.resize(R * c.dim);
  xn_.resize(R * c.dim);
  q_.resize(R * c.q_dim());
  k_.resize(R * c.kv_dim());
  v_.resize(R * c.kv_dim());
  attn_.resize(R * c.attn_out_dim());
  // The FFN scratch serves the dense layers and the shared experts.
  const int64_t ff = std::max(c.ff_dim, c.moe.n_shared * c.moe.expert_ff);
  gate_.resize(R * ff);
  up_.resize(R * ff);
  proj_.resize(R * c.dim);
  if (c.mla.enabled()) {
    q_lat_.resize(R * c.mla.q_lora);
    q_full_.resize(R * c.n_heads * (c.mla.nope_dim + c.rope_dim));
    kv_lat_.resize(R * c.kv_dim());
    v_out_.resize(R * c.n_heads * c.mla.v_head_dim);
  }
  if (c.moe.enabled()) {
    const int64_t E = c.moe.n_experts, K = c.moe.n_used, Fe = c.moe.expert_ff;
    router_.resize(R * E);
    chosen_.resize(R * K);
    chosen_weight_.resize(R * K);
    moe_x_.resize(R * c.dim);
    moe_gate_.resize(R * Fe);
    moe_up_.resize(R * Fe);
    moe_y_.resize(R * c.dim);
    expert_out_.resize(R * K * c.dim);
    expert_sum_.resize(static_cast<size_t>(c.dim));
  }
}

void ForwardPass::rope_angles_at(int64_t pos) {
  rope_angles(rope_freqs_, pos, rope_cos_.data(), rope_sin_.data());
  const float magnitude = model_.config().yarn.magnitude;
  if (magnitude == 1.0f) return;
  for (size_t i = 0; i < rope_cos_.size(); ++i) {
    rope_cos_[i] *= magnitude;
    rope_sin_[i] *= magnitude;
  }
}

void ForwardPass::linear(const Matrix& m, const float* x, float* y) {
  const double t0 = now_seconds();
  // Single rows: the weights are read once for all of them, each row as matvec computes it.
  if (n_single_ > 0) matvec_batch(m.type, m.data, x, y, n_single_, m.rows, m.cols, &pool_);
  // Prompt chunks: one product each, exactly as the chunk alone would be computed.
  for (const PassSlice& s : slices_) {
    const auto n = static_cast<int64_t>(s.tokens.size());
    if (s.row0 < n_single_) continue;
    matmul(m.type, m.data, x + s.row0 * m.cols, y + s.row0 * m.rows, n, m.rows, m.cols, &pool_);
  }
  times_.matmul += now_seconds() - t0;
}

void ForwardPass::linear_many(std::initializer_list<std::pair<const Matrix*, float*>> outputs, const float* x) {
  const Matrix& first = *outputs.begin()->first;
  constexpr size_t kMaxFused = 3;  // a layer's Q, K and V
  bool fused = n_rows_ == 1 && n_single_ == 1 && outputs.size() <= kMaxFused;
  for (const auto& [m, y] : outputs) fused = fused && m->type == first.type && m->cols == first.cols;
  if (!fused) {
    for (const auto& [m, y] : outputs) linear(*m, x, y);
    return;
  }
  const double t0 = now_seconds();
  std::array<MatvecTarget, kMaxFused> targets{};
  size_t n = 0;
  for (const auto& [m, y] : outputs) targets[n++] = {m->data, y, m->rows};
  matvec_many(first.type, std::span(targets.data(), n), x, first.cols, &pool_);
  times_.matmul += now_seconds() - t0;
}

void ForwardPass::run(std::span<const PassSlice> slices) {
  const ModelConfig& c = model_.config();
  const ModelWeights& w = model_.weights();
  slices_ = slices;
  n_rows_ = 0;
  n_single_ = 0;
  for (const PassSlice& s : slices) {
    const auto n = static_cast<int64_t>(s.tokens.size());
    if (s.row0 != n_rows_) fail("internal: pass rows out of order");
    if (n == 1 && n_rows_ == n_single_) ++n_single_;
    n_rows_ += n;
  }
  resize(n_rows_);
  const int64_t D = c.dim, Q = c.q_dim();
  const float eps = static_cast<float>(c.rms_eps);

  double t0 = now_seconds();
  const size_t embd_row = row_bytes(w.token_embd.type, D);
  for (const PassSlice& s : slices)
    for (size_t i = 0; i < s.tokens.size(); ++i)
      dequantize_row(w.token_embd.type,
                     static_cast<const uint8_t*>(w.token_embd.data) + embd_row * s.tokens[i],
                     &x_[(s.row0 + static_cast<int64_t>(i)) * D], D);
  if (c.embd_scale != 1.0f)
    for (int64_t j = 0; j < n_rows_ * D; ++j) x_[j] *= c.embd_scale;
  times_.other += now_seconds() - t0;

  for (const PassSlice& s : slices)
    s.sequence->kv().begin_batch(s.sequence->n_past(), static_cast<int64_t>(s.tokens.size()));
  for (int64_t il = 0; il < c.n_layers; ++il) {
    const LayerWeights& l = w.layers[static_cast<size_t>(il)];
    for (const PassSlice& s : slices) {
      KvBackend& kv = s.sequence->kv();
      const std::vector<int64_t>& observed = kv.observed_layers();
      if (std::find(observed.begin(), observed.end(), il) == observed.end()) continue;
      for (size_t i = 0; i < s.tokens.size(); ++i) {
        const int64_t row = s.row0 + static_cast<int64_t>(i);
        kv.observe_hidden(il, s.sequence->n_past() + static_cast<int64_t>(i), &x_[row * D]);
      }
    }
    // ---- attention block: x += Wo · attn(RoPE(Wq·n(x)), RoPE(Wk·n(x)), Wv·n(x))
    t0 = now_seconds();
    for (int64_t i = 0; i < n_rows_; ++i) rms_norm(&x_[i * D], l.attn_norm, &xn_[i * D], D, eps);
    times_.other += now_seconds() - t0;
    if (c.mla.enabled()) {
      latent_queries_and_keys(l, il);
    } else {
      attention_inputs(l, il);
    }
    t0 = now_seconds();
    for (const PassSlice& s : slices) {
      KvBackend& kv = s.sequence->kv();
      if (kv.wants_queries())
        kv.observe_queries(il, &q_[s.row0 * Q], static_cast<int64_t>(s.tokens.size()));
      attention(s, il);
    }
    times_.attention += now_seconds() - t0;
    if (c.mla.enabled()) {
      latent_output(l);
    } else {
      linear(l.wo, attn_.data(), proj_.data());
    }
    add_block_output(x_.data(), proj_.data(), l.attn_post_norm, n_rows_, D, eps);

    // ---- feed-forward block: x += W_down · (act(W_gate·n(x)) ⊙ W_up·n(x)) (+ routed experts)
    t0 = now_seconds();
    for (int64_t i = 0; i < n_rows_; ++i) rms_norm(&x_[i * D], l.ffn_norm, &xn_[i * D], D, eps);
    times_.other += now_seconds() - t0;
    if (c.moe.is_moe_layer(il)) {
      moe_ffn(l);
    } else {
      dense_ffn(l.w_gate, l.w_up, l.w_down, proj_.data());
    }
    add_block_output(x_.data(), proj_.data(), l.ffn_post_norm, n_rows_, D, eps);
  }
  finish_pass(slices);
}

void ForwardPass::attention_inputs(const LayerWeights& l, int64_t il) {
  const ModelConfig& c = model_.config();
  const int64_t Q = c.q_dim(), KV = c.kv_dim(), hd = c.head_dim;
  const float eps = static_cast<float>(c.rms_eps);
  linear_many({{&l.wq, q_.data()}, {&l.wk, k_.data()}, {&l.wv, v_.data()}}, xn_.data());
  const double t0 = now_seconds();
  for (const PassSlice& s : slices_) {
    KvBackend& kv = s.sequence->kv();
    for (size_t i = 0; i < s.tokens.size(); ++i) {
      const int64_t row = s.row0 + static_cast<int64_t>(i);
      const int64_t pos = s.sequence->n_past() + static_cast<int64_t>(i);
      float* q = &q_[row * Q];
      float* k = &k_[row * KV];
      float* v = &v_[row * KV];
      if (l.bq != nullptr) {
        for (int64_t j = 0; j < Q; ++j) q[j] += l.bq[j];
        for (int64_t j = 0; j < KV; ++j) k[j] += l.bk[j];
        for (int64_t j = 0; j < KV; ++j) v[j] += l.bv[j];
      }
      if (l.q_norm != nullptr) {  // per-head RMSNorm of q and k before RoPE (qwen3)
        for (int64_t h = 0; h < c.n_heads; ++h) rms_norm(q + h * hd, l.q_norm, q + h * hd, hd, eps);
        for (int64_t h = 0; h < c.n_kv_heads; ++h) rms_norm(k + h * hd, l.k_norm, k + h * hd, hd, eps);
      }
      // One position's angles serve every head of q and k (each head's first rope_dim dims).
      rope_angles_at(pos);
      for (int64_t h = 0; h < c.n_heads; ++h)
        rope_rotate(q + h * hd, c.rope_dim, c.arch->rope_style, rope_cos_.data(), rope_sin_.data());
      for (int64_t h = 0; h < c.n_kv_heads; ++h)
        rope_rotate(k + h * hd, c.rope_dim, c.arch->rope_style, rope_cos_.data(), rope_sin_.data());
      kv.store(il, pos, k, v);
    }
  }
  times_.other += now_seconds() - t0;
}

void ForwardPass::dense_ffn(const Matrix& w_gate, const Matrix& w_up, const Matrix& w_down, float* out) {
  linear_many({{&w_gate, gate_.data()}, {&w_up, up_.data()}}, xn_.data());
  const double t0 = now_seconds();
  activate_mul(model_.config().arch->ffn_activation, gate_.data(), up_.data(), n_rows_ * w_gate.rows);
  times_.other += now_seconds() - t0;
  linear(w_down, gate_.data(), out);
}

void ForwardPass::finish_pass(std::span<const PassSlice> slices) {
  const ModelConfig& c = model_.config();
  const ModelWeights& w = model_.weights();
  const int64_t D = c.dim;
  const float eps = static_cast<float>(c.rms_eps);
  // Every slice's backend ends its batch, even after another one failed (a store write): the
  // first error is rethrown once all are closed, and only slices that ended advance.
  std::exception_ptr first_error;
  for (const PassSlice& s : slices) {
    try {
      s.sequence->kv().end_batch(s.is_prompt_end);
      s.sequence->n_past_ += static_cast<int64_t>(s.tokens.size());
      s.sequence->tokens_.insert(s.sequence->tokens_.end(), s.tokens.begin(), s.tokens.end());
    } catch (...) {
      if (!first_error) first_error = std::current_exception();
    }
  }
  if (first_error) std::rethrow_exception(first_error);

  // Output head only for the rows the callers want: single rows' logits in one product.
  for (const PassSlice& s : slices) {
    if (s.logits == nullptr) continue;
    const auto n = static_cast<int64_t>(s.tokens.size());
    const int64_t first = s.all_logits ? 0 : n - 1;
    for (int64_t i = first; i < n; ++i)
      rms_norm(&x_[(s.row0 + i) * D], w.output_norm, &xn_[(s.row0 + i) * D], D, eps);
  }
  const double t0_head = now_seconds();
  const int64_t V = c.n_vocab;
  // Single rows: one product for all of them when any wants logits (the weights are read once;
  // rows nobody wants only cost arithmetic), then copied out.
  bool single_logits = false;
  for (const PassSlice& s : slices)
    if (s.row0 < n_single_ && s.logits != nullptr) single_logits = true;
  if (single_logits) {
    logits_.resize(static_cast<size_t>(n_single_ * V));
    matvec_batch(w.output.type, w.output.data, xn_.data(), logits_.data(), n_single_, w.output.rows,
                 w.output.cols, &pool_);
    for (const PassSlice& s : slices)
      if (s.row0 < n_single_ && s.logits != nullptr) {
        std::copy_n(&logits_[static_cast<size_t>(s.row0 * V)], V, s.logits);
        soft_cap_logits(s.logits, V, c.final_softcap);
      }
  }
  // Prompt chunks: as the chunk alone (all rows, or the last).
  for (const PassSlice& s : slices) {
    if (s.row0 < n_single_ || s.logits == nullptr) continue;
    const auto n = static_cast<int64_t>(s.tokens.size());
    const int64_t first = s.all_logits ? 0 : n - 1;
    matmul(w.output.type, w.output.data, &xn_[(s.row0 + first) * D], s.logits, n - first,
           w.output.rows, w.output.cols, &pool_);
    soft_cap_logits(s.logits, (n - first) * V, c.final_softcap);
  }
  times_.matmul += now_seconds() - t0_head;
}

}  // namespace flashmem
