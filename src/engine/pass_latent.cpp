// deepseek2's blocks in the batched forward pass: multi-head latent attention with absorbed
// projections (the cache row is the latent + rope'd k_pe; see ModelConfig::mla) and the
// mixture-of-experts FFN. The math is llama.cpp's (src/models/deepseek2.cpp, the MLA path, and
// llama-graph.cpp's build_moe_ffn); every per-row step is done row by row, so a row's result does
// not depend on the other rows of the pass.
#include <algorithm>
#include <cmath>
#include <numeric>

#include "engine/forward_pass.h"
#include "tensor/kernels.h"
#include "tensor/rope.h"
#include "util/timer.h"

namespace flashmem {

void ForwardPass::latent_queries_and_keys(const LayerWeights& l, int64_t il) {
  const ModelConfig& c = model_.config();
  const LatentAttention& a = c.mla;
  const LatentAttentionWeights& w = l.mla;
  const int64_t H = c.n_heads, lora = a.kv_lora, rope = c.rope_dim, qk = a.nope_dim + rope;
  const int64_t Q = c.q_dim(), row_dim = c.kv_dim();  // Q = H * (lora + rope), row = lora + rope
  const float eps = static_cast<float>(c.rms_eps);
  if (a.q_lora > 0) {
    linear(w.wq_a, xn_.data(), q_lat_.data());
    for (int64_t i = 0; i < n_rows_; ++i)
      rms_norm(&q_lat_[i * a.q_lora], w.q_a_norm, &q_lat_[i * a.q_lora], a.q_lora, eps);
    linear(w.wq_b, q_lat_.data(), q_full_.data());
  } else {
    linear(l.wq, xn_.data(), q_full_.data());
  }
  linear(w.wkv_a, xn_.data(), kv_lat_.data());
  const double t0 = now_seconds();
  // Absorption: q_[row, h] = [W_kb[h] · q_nope[h] (lora), q_pe[h] (rope)], one small product per
  // (row, head), dealt over the threads.
  const int64_t items = n_rows_ * H, n_threads = pool_.size();
  pool_.run([&](int part) {
    for (int64_t item = part; item < items; item += n_threads) {
      const int64_t row = item / H, h = item % H;
      const Matrix wk = w.wk_b.at(h);
      float* q = &q_[row * Q + h * (lora + rope)];
      const float* q_head = &q_full_[row * H * qk + h * qk];  // [nope | pe]
      matvec(wk.type, wk.data, q_head, q, wk.rows, wk.cols, nullptr);
      std::copy_n(q_head + a.nope_dim, rope, q + lora);
    }
  });
  for (const PassSlice& s : slices_) {
    KvBackend& kv = s.sequence->kv();
    for (size_t i = 0; i < s.tokens.size(); ++i) {
      const int64_t row = s.row0 + static_cast<int64_t>(i);
      const int64_t pos = s.sequence->n_past() + static_cast<int64_t>(i);
      float* kv_row = &kv_lat_[row * row_dim];  // [latent (lora) | k_pe (rope)]
      rms_norm(kv_row, w.kv_a_norm, kv_row, lora, eps);
      rope_angles_at(pos);
      rope_rotate(kv_row + lora, rope, c.arch->rope_style, rope_cos_.data(), rope_sin_.data());
      for (int64_t h = 0; h < H; ++h)
        rope_rotate(&q_[row * Q + h * (lora + rope) + lora], rope, c.arch->rope_style,
                    rope_cos_.data(), rope_sin_.data());
      kv.store(il, pos, kv_row, nullptr);  // the value is the row's latent (values_in_keys)
    }
  }
  times_.other += now_seconds() - t0;
}

void ForwardPass::latent_output(const LayerWeights& l) {
  const ModelConfig& c = model_.config();
  const int64_t H = c.n_heads, lora = c.mla.kv_lora, vh = c.mla.v_head_dim;
  const double t0 = now_seconds();
  const int64_t items = n_rows_ * H, n_threads = pool_.size();
  pool_.run([&](int part) {
    for (int64_t item = part; item < items; item += n_threads) {
      const int64_t row = item / H, h = item % H;
      const Matrix wv = l.mla.wv_b.at(h);
      matvec(wv.type, wv.data, &attn_[(row * H + h) * lora], &v_out_[(row * H + h) * vh], wv.rows,
             wv.cols, nullptr);
    }
  });
  times_.other += now_seconds() - t0;
  linear(l.wo, v_out_.data(), proj_.data());
}

void ForwardPass::moe_ffn(const LayerWeights& l) {
  const ModelConfig& c = model_.config();
  const MixtureOfExperts& m = c.moe;
  const ExpertWeights& e = l.moe;
  const int64_t D = c.dim, E = m.n_experts, F = m.expert_ff, K = m.n_used;
  if (m.n_shared > 0) {
    dense_ffn(e.shared_gate, e.shared_up, e.shared_down, proj_.data());
  } else {
    std::fill_n(proj_.begin(), n_rows_ * D, 0.0f);
  }
  linear(e.router, xn_.data(), router_.data());
  double t0 = now_seconds();
  route_experts(e);
  times_.other += now_seconds() - t0;
  // Each slice's rows that chose expert x go through it together (a prompt chunk: one matmul per
  // matrix over them; a single row: matvec), exactly as the slice alone would compute them.
  t0 = now_seconds();
  std::vector<int64_t> picks;  // (row * K + k) of the slice's rows that chose expert x, in row order
  for (const PassSlice& s : slices_) {
    const auto n = static_cast<int64_t>(s.tokens.size());
    for (int64_t x = 0; x < E; ++x) {
      picks.clear();
      for (int64_t row = s.row0; row < s.row0 + n; ++row)
        for (int64_t k = 0; k < K; ++k)
          if (chosen_[row * K + k] == x) picks.push_back(row * K + k);
      if (picks.empty()) continue;
      const auto rows = static_cast<int64_t>(picks.size());
      for (int64_t i = 0; i < rows; ++i) std::copy_n(&xn_[picks[i] / K * D], D, &moe_x_[i * D]);
      const Matrix gate = e.gate.at(x), up = e.up.at(x), down = e.down.at(x);
      matmul(gate.type, gate.data, moe_x_.data(), moe_gate_.data(), rows, F, D, &pool_);
      matmul(up.type, up.data, moe_x_.data(), moe_up_.data(), rows, F, D, &pool_);
      activate_mul(FfnActivation::kSilu, moe_gate_.data(), moe_up_.data(), rows * F);
      matmul(down.type, down.data, moe_gate_.data(), moe_y_.data(), rows, D, F, &pool_);
      for (int64_t i = 0; i < rows; ++i) std::copy_n(&moe_y_[i * D], D, &expert_out_[picks[i] * D]);
    }
  }
  times_.matmul += now_seconds() - t0;
  // llama.cpp's order: the routed experts summed in rank order, then the shared experts added.
  for (int64_t row = 0; row < n_rows_; ++row) {
    float* out = &proj_[row * D];
    std::fill(expert_sum_.begin(), expert_sum_.end(), 0.0f);
    for (int64_t k = 0; k < K; ++k)
      axpy_f32(chosen_weight_[row * K + k], &expert_out_[(row * K + k) * D], expert_sum_.data(), D);
    for (int64_t j = 0; j < D; ++j) out[j] = expert_sum_[j] + out[j];
  }
}

void ForwardPass::route_experts(const ExpertWeights& e) {
  const MixtureOfExperts& m = model_.config().moe;
  const int64_t E = m.n_experts, K = m.n_used;
  std::vector<float> probs(static_cast<size_t>(E)), selection(static_cast<size_t>(E));  // [E]
  std::vector<int64_t> order(static_cast<size_t>(E));                                   // [E]
  for (int64_t row = 0; row < n_rows_; ++row) {
    const float* logits = &router_[row * E];
    if (m.gating == ExpertGating::kSoftmax) {
      const float max_logit = *std::max_element(logits, logits + E);
      float sum = 0.0f;
      for (int64_t i = 0; i < E; ++i) sum += probs[i] = std::exp(logits[i] - max_logit);
      for (float& p : probs) p /= sum;
    } else {
      for (int64_t i = 0; i < E; ++i) probs[i] = 1.0f / (1.0f + std::exp(-logits[i]));
    }
    // The bias (exp_probs_b, DeepSeek-V3) only chooses the experts; their weights stay unbiased.
    for (int64_t i = 0; i < E; ++i) selection[i] = probs[i] + (e.selection_bias ? e.selection_bias[i] : 0.0f);
    std::iota(order.begin(), order.end(), 0);
    std::partial_sort(order.begin(), order.begin() + K, order.end(),
                      [&](int64_t x, int64_t y) { return selection[x] > selection[y]; });
    float* weights = &chosen_weight_[row * K];
    float sum = 0.0f;
    for (int64_t k = 0; k < K; ++k) {
      chosen_[row * K + k] = order[k];
      sum += weights[k] = probs[order[k]];
    }
    // llama.cpp clamps the sum to the smallest normal f16 before dividing.
    constexpr float kMinWeightSum = 6.103515625e-5f;
    for (int64_t k = 0; k < K; ++k) {
      if (m.normalize) weights[k] /= std::max(sum, kMinWeightSum);
      weights[k] *= m.scale;
    }
  }
}

}  // namespace flashmem
