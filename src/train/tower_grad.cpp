#include "train/tower_grad.h"

#include <cmath>
#include <cstring>

#include "tensor/convert.h"
#include "tensor/kernels.h"
#include "util/error.h"

namespace flashmem {
namespace {

constexpr int64_t kHd = kIndexerHeadDim;

// 8-lane vectors of the compiler's vector extension: AVX2 (or AVX-512 halves) where the target
// has it, plain scalar code elsewhere. Training is dominated by these two loops, and a float sum
// reduction is not auto-vectorized without -ffast-math. (The engine's dot_f32 has an AVX-512
// path only.) Eight partial sums change the summation order versus a plain loop; the gradient
// check compares against finite differences of this same function.
using Vec8 = float __attribute__((vector_size(32)));
constexpr int64_t kLanes8 = 8;

inline Vec8 load8(const float* p) {
  Vec8 v;
  std::memcpy(&v, p, sizeof(v));
  return v;
}
inline void store8(float* p, Vec8 v) { std::memcpy(p, &v, sizeof(v)); }

float dot(const float* a, const float* b, int64_t n) {
  Vec8 acc0 = {}, acc1 = {};
  int64_t i = 0;
  for (; i + 2 * kLanes8 <= n; i += 2 * kLanes8) {
    acc0 += load8(a + i) * load8(b + i);
    acc1 += load8(a + i + kLanes8) * load8(b + i + kLanes8);
  }
  for (; i + kLanes8 <= n; i += kLanes8) acc0 += load8(a + i) * load8(b + i);
  acc0 += acc1;
  float s = 0.0f;
  for (int j = 0; j < kLanes8; ++j) s += acc0[j];
  for (; i < n; ++i) s += a[i] * b[i];
  return s;
}
void axpy(float alpha, const float* x, float* y, int64_t n) {
  int64_t i = 0;
  for (; i + kLanes8 <= n; i += kLanes8) store8(y + i, load8(y + i) + alpha * load8(x + i));
  for (; i < n; ++i) y[i] += alpha * x[i];
}
// y[rows] = W[rows, cols] · x[cols]
void gemv_f32(const float* w, const float* x, float* y, int64_t rows, int64_t cols) {
  for (int64_t r = 0; r < rows; ++r) y[r] = dot(w + r * cols, x, cols);
}
// y[cols] += W[rows, cols]^T · x[rows]
void matvec_t_add(const float* w, const float* x, float* y, int64_t rows, int64_t cols) {
  for (int64_t r = 0; r < rows; ++r)
    if (x[r] != 0.0f) axpy(x[r], w + r * cols, y, cols);
}
// G[rows, cols] += a[rows] ⊗ b[cols]
void outer_add(const float* a, const float* b, float* g, int64_t rows, int64_t cols) {
  for (int64_t r = 0; r < rows; ++r)
    if (a[r] != 0.0f) axpy(a[r], b, g + r * cols, cols);
}

YarnRope::Angles inverse(YarnRope::Angles a) {
  for (float& s : a.sin) s = -s;
  return a;
}

std::vector<float> to_f32(const WeightData& w) {
  std::vector<float> out(static_cast<size_t>(w.rows * w.cols));
  const size_t rb = row_bytes(w.type, w.cols);
  for (int64_t r = 0; r < w.rows; ++r) dequantize_row(w.type, w.bytes.data() + rb * r, out.data() + r * w.cols, w.cols);
  return out;
}

}  // namespace

TowerLayout tower_layout(const IndexerConfig& c) {
  TowerLayout l;
  l.D = c.hidden_dim;
  l.R = c.q_lora_rank;
  l.H = c.n_heads;
  l.wq_a = 0;
  l.g = l.wq_a + l.R * l.D;
  l.wq_b = l.g + l.R;
  l.wp = l.wq_b + l.H * kHd * l.R;
  l.wk = l.wp + l.H * l.D;
  l.layer_size = l.wk + kHd * l.D;
  l.n_layers = static_cast<int64_t>(c.layers.size());
  return l;
}

std::vector<float> params_from_weights(const IndexerWeights& weights) {
  const TowerLayout l = tower_layout(weights.config);
  std::vector<float> p(static_cast<size_t>(l.size()));
  for (size_t i = 0; i < weights.layers.size(); ++i) {
    const IndexerLayerWeights& w = weights.layers[i];
    if (!w.wk) fail("training needs a learned key tower (wk) in every layer");
    float* base = p.data() + static_cast<int64_t>(i) * l.layer_size;
    const std::pair<const WeightData*, int64_t> parts[] = {
        {&w.wq_a, l.wq_a}, {&w.q_norm, l.g}, {&w.wq_b, l.wq_b}, {&w.weights_proj, l.wp}, {&*w.wk, l.wk}};
    for (const auto& [data, offset] : parts) {
      const std::vector<float> v = to_f32(*data);
      std::memcpy(base + offset, v.data(), v.size() * sizeof(float));
    }
  }
  return p;
}

IndexerWeights weights_from_params(const IndexerConfig& config, const std::vector<float>& params, DType type) {
  const TowerLayout l = tower_layout(config);
  if (static_cast<int64_t>(params.size()) != l.size()) fail("{} parameters for a layout of {}", params.size(), l.size());
  IndexerWeights out;
  out.config = config;
  for (int64_t i = 0; i < l.n_layers; ++i) {
    const float* base = params.data() + i * l.layer_size;
    auto part = [&](int64_t offset, int64_t rows, int64_t cols) {
      return make_weight(type, rows, cols, std::vector<float>(base + offset, base + offset + rows * cols));
    };
    IndexerLayerWeights w;
    w.layer_id = config.layers[static_cast<size_t>(i)];
    w.wq_a = part(l.wq_a, l.R, l.D);
    w.q_norm = part(l.g, 1, l.R);
    w.wq_b = part(l.wq_b, l.H * kHd, l.R);
    w.weights_proj = part(l.wp, l.H, l.D);
    w.wk = part(l.wk, kHd, l.D);
    out.layers.push_back(std::move(w));
  }
  return out;
}

float tower_loss_grad(const TowerLayout& L, const YarnRope& rope, float rms_eps,
                      const std::vector<float>& params, const SampleInput& x, LossKind loss,
                      float* grad, TowerScratch& s) {
  const int64_t D = L.D, R = L.R, H = L.H, C = x.n_chunks;
  const float w_scale = static_cast<float>(1.0 / std::sqrt(static_cast<double>(kHd)) / std::sqrt(static_cast<double>(H)));
  s.a.resize(R); s.n.resize(R); s.q_lora.resize(R); s.v.resize(H * kHd); s.w.resize(H);
  s.u.resize(C * kHd); s.k.resize(C * kHd); s.s.resize(H * C); s.logits.resize(C); s.dlogits.resize(C);
  s.dq.resize(H * kHd); s.dk.resize(kHd); s.dv.resize(H * kHd); s.dql.resize(R); s.dw.resize(H); s.tmp.resize(R);
  const YarnRope::Angles q_angles = rope.angles(x.pos);
  // RoPE angles of each chunk's first position and their inverses, shared by the layers.
  s.angles.resize(C);
  s.inverse_angles.resize(C);
  for (int64_t c = 0; c < C; ++c) {
    s.angles[c] = rope.angles(x.first_pos[static_cast<size_t>(c)]);
    s.inverse_angles[c] = inverse(s.angles[c]);
  }
  float total = 0.0f;
  for (int64_t l = 0; l < L.n_layers; ++l) {
    const float* P = params.data() + l * L.layer_size;
    const float* h = x.hidden.data() + l * D;              // [D]
    const float* m = x.key_inputs.data() + l * C * D;      // [C, D]
    // ---- query tower
    gemv_f32(P + L.wq_a, h, s.a.data(), R, D);               // a [R] = W_qa [R, D] · h
    const float inv_rms = 1.0f / std::sqrt(dot(s.a.data(), s.a.data(), R) / static_cast<float>(R) + rms_eps);
    for (int64_t i = 0; i < R; ++i) {
      s.n[i] = s.a[i] * inv_rms;
      s.q_lora[i] = s.n[i] * P[L.g + i];
    }
    gemv_f32(P + L.wq_b, s.q_lora.data(), s.v.data(), H * kHd, R);  // q [H·128] = W_qb · q_lora
    for (int64_t hh = 0; hh < H; ++hh) rope.apply(q_angles, s.v.data() + hh * kHd);  // s.v now holds q
    gemv_f32(P + L.wp, h, s.w.data(), H, D);                 // w [H] = W_p · h · scale
    for (float& w : s.w) w *= w_scale;
    // ---- key tower and logits
    for (int64_t c = 0; c < C; ++c) {
      float* k = s.k.data() + c * kHd;
      gemv_f32(P + L.wk, m + c * D, k, kHd, D);               // k [128] = W_k [128, D] · m_c
      rope.apply(s.angles[c], k);
      float logit = 0.0f;
      for (int64_t hh = 0; hh < H; ++hh) {
        const float sc = dot(s.v.data() + hh * kHd, k, kHd);
        s.s[hh * C + c] = sc;
        logit += s.w[hh] * (sc > 0.0f ? sc : 0.0f);
      }
      s.logits[c] = logit;
    }
    total += loss_and_grad(loss, s.logits.data(), x.labels.data(), x.weights.data(), C,
                           grad != nullptr ? s.dlogits.data() : nullptr);
    if (grad == nullptr) continue;
    float* G = grad + l * L.layer_size;
    // ---- backward: logits -> w, q, k
    std::fill(s.dw.begin(), s.dw.end(), 0.0f);
    std::fill(s.dq.begin(), s.dq.end(), 0.0f);
    for (int64_t c = 0; c < C; ++c) {
      const float dl = s.dlogits[c];
      if (dl == 0.0f) continue;
      const float* k = s.k.data() + c * kHd;
      std::fill(s.dk.begin(), s.dk.end(), 0.0f);
      for (int64_t hh = 0; hh < H; ++hh) {
        const float sc = s.s[hh * C + c];
        if (sc <= 0.0f) continue;                           // relu: no gradient below 0
        s.dw[hh] += dl * sc;
        const float ds = dl * s.w[hh];
        axpy(ds, k, s.dq.data() + hh * kHd, kHd);           // dq_h += ds · k_c
        axpy(ds, s.v.data() + hh * kHd, s.dk.data(), kHd);  // dk_c += ds · q_h
      }
      rope.apply(s.inverse_angles[c], s.dk.data());  // du_c
      outer_add(s.dk.data(), m + c * D, G + L.wk, kHd, D);  // dW_k += du_c ⊗ m_c
    }
    // w = scale · W_p h
    for (float& dw : s.dw) dw *= w_scale;
    outer_add(s.dw.data(), h, G + L.wp, H, D);
    // q_h = RoPE(v_h): dv = RoPE^-1(dq)
    const YarnRope::Angles q_inverse = inverse(q_angles);
    for (int64_t hh = 0; hh < H; ++hh) rope.apply(q_inverse, s.dq.data() + hh * kHd);
    outer_add(s.dq.data(), s.q_lora.data(), G + L.wq_b, H * kHd, R);  // dW_qb += dv ⊗ q_lora
    std::fill(s.dql.begin(), s.dql.end(), 0.0f);
    matvec_t_add(P + L.wq_b, s.dq.data(), s.dql.data(), H * kHd, R);  // dq_lora = W_qb^T dv
    // q_lora = n ⊙ g; n = a · inv_rms: da = inv_rms · (dn − n · mean(dn ⊙ n))
    float dn_dot_n = 0.0f;
    for (int64_t i = 0; i < R; ++i) {
      G[L.g + i] += s.dql[i] * s.n[i];
      s.tmp[i] = s.dql[i] * P[L.g + i];                     // dn
      dn_dot_n += s.tmp[i] * s.n[i];
    }
    const float mean_dn_n = dn_dot_n / static_cast<float>(R);
    for (int64_t i = 0; i < R; ++i) s.tmp[i] = inv_rms * (s.tmp[i] - s.n[i] * mean_dn_n);  // da
    outer_add(s.tmp.data(), h, G + L.wq_a, R, D);           // dW_qa += da ⊗ h
  }
  return total;
}

}  // namespace flashmem
