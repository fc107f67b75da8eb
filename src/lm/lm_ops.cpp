#include "lm/lm_ops.h"

#include <algorithm>
#include <cmath>

#include "lm/gemm.h"
#include "lm/lm_forward.h"

namespace flashmem::lm {

void rms_norm_forward(const float* x, const float* w, float* y, float* inv_rms, int64_t T,
                      int64_t D, float eps) {
  for (int64_t t = 0; t < T; ++t) {
    const float* xr = x + t * D;
    double ss = 0;
    for (int64_t i = 0; i < D; ++i) ss += static_cast<double>(xr[i]) * xr[i];
    const float r = static_cast<float>(1.0 / std::sqrt(ss / static_cast<double>(D) + eps));
    inv_rms[t] = r;
    for (int64_t i = 0; i < D; ++i) y[t * D + i] = xr[i] * r * w[i];
  }
}

void rms_norm_backward(const float* x, const float* w, const float* inv_rms, const float* dy,
                       float* dx, float* dw, int64_t T, int64_t D) {
  // y_i = x_i r w_i, r = (mean(x²) + eps)^(-1/2), ∂r/∂x_j = -r³ x_j / D:
  // dx_j = r g_j - x_j r³ (Σ_i g_i x_i) / D with g = dy ⊙ w.
  for (int64_t t = 0; t < T; ++t) {
    const float* xr = x + t * D;
    const float* dyr = dy + t * D;
    const double r = inv_rms[t];
    double gx = 0;
    for (int64_t i = 0; i < D; ++i) {
      gx += static_cast<double>(dyr[i]) * w[i] * xr[i];
      dw[i] += static_cast<float>(dyr[i] * xr[i] * r);
    }
    const double coef = r * r * r * gx / static_cast<double>(D);
    for (int64_t i = 0; i < D; ++i)
      dx[t * D + i] += static_cast<float>(r * dyr[i] * w[i] - coef * xr[i]);
  }
}

void rope_apply(float* v, int64_t T, int64_t n_heads, int64_t hd, const RopeTable& rope,
                bool inverse) {
  const int64_t half = hd / 2;
  for (int64_t t = 0; t < T; ++t) {
    const float* cs = &rope.cos[static_cast<size_t>(t * half)];
    const float* sn = &rope.sin[static_cast<size_t>(t * half)];
    for (int64_t h = 0; h < n_heads; ++h) {
      float* p = v + (t * n_heads + h) * hd;
      for (int64_t i = 0; i < half; ++i) {
        const float c = cs[i], s = inverse ? -sn[i] : sn[i];
        const float x0 = p[2 * i], x1 = p[2 * i + 1];
        p[2 * i] = x0 * c - x1 * s;
        p[2 * i + 1] = x0 * s + x1 * c;
      }
    }
  }
}

void linear_forward(const float* w, const float* x, float* y, int64_t T, int64_t rows,
                    int64_t cols) {
  gemm_abt(x, w, y, T, rows, cols);
}

void linear_backward(const float* w, const float* x, const float* dy, float* dx, float* dw,
                     int64_t T, int64_t rows, int64_t cols, std::vector<float>& scratch) {
  // Scratch: wt [cols, rows] | xt [cols, T] | dyt [rows, T] | dw_part [rows, cols].
  const size_t n_wt = cols * rows, n_xt = cols * T, n_dyt = rows * T, n_dw = rows * cols;
  scratch.resize(std::max(scratch.size(), n_wt + n_xt + n_dyt + n_dw));
  float* wt = scratch.data();
  float* xt = wt + n_wt;
  float* dyt = xt + n_xt;
  float* dw_part = dyt + n_dyt;
  if (dx != nullptr) {
    transpose(w, wt, rows, cols);
    gemm_abt(dy, wt, dx, T, cols, rows);  // dx[T, cols] = dy[T, rows] · (wᵀ)[cols, rows]ᵀ
  }
  transpose(x, xt, T, cols);
  transpose(dy, dyt, T, rows);
  gemm_abt(dyt, xt, dw_part, rows, cols, T);  // dw[rows, cols] = dyᵀ[rows, T] · xᵀ[cols, T]ᵀ
  for (size_t i = 0; i < n_dw; ++i) dw[i] += dw_part[i];
}

namespace {

// Copies head columns [h·hd, (h+1)·hd) of x[T, stride] into out[T, hd] (or back when scatter).
void gather_head(const float* x, float* out, int64_t T, int64_t stride, int64_t h, int64_t hd) {
  for (int64_t t = 0; t < T; ++t) std::copy_n(x + t * stride + h * hd, hd, out + t * hd);
}
void scatter_head(const float* in, float* x, int64_t T, int64_t stride, int64_t h, int64_t hd,
                  bool accumulate) {
  for (int64_t t = 0; t < T; ++t)
    for (int64_t i = 0; i < hd; ++i) {
      float& dst = x[t * stride + h * hd + i];
      dst = accumulate ? dst + in[t * hd + i] : in[t * hd + i];
    }
}

}  // namespace

void attention_forward(const float* q, const float* k, const float* v, float* probs, float* out,
                       int64_t T, int64_t H, int64_t KVH, int64_t hd, std::vector<float>& scratch) {
  const int64_t Q = H * hd, KV = KVH * hd, group = H / KVH;
  const float scale = 1.0f / std::sqrt(static_cast<float>(hd));
  // Scratch: qh [T, hd] | kh [T, hd] | vt [hd, T] | vh [T, hd] | oh [T, hd].
  scratch.resize(std::max(scratch.size(), static_cast<size_t>(5 * T * hd)));
  float* qh = scratch.data();
  float* kh = qh + T * hd;
  float* vt = kh + T * hd;
  float* vh = vt + T * hd;
  float* oh = vh + T * hd;
  for (int64_t h = 0; h < H; ++h) {
    const int64_t g = h / group;
    gather_head(q, qh, T, Q, h, hd);
    gather_head(k, kh, T, KV, g, hd);
    gather_head(v, vh, T, KV, g, hd);
    transpose(vh, vt, T, hd);
    float* p = probs + h * T * T;  // [T, T]
    gemm_abt(qh, kh, p, T, T, hd);  // scores, full square; the upper triangle is masked below
    for (int64_t i = 0; i < T; ++i) {
      float* row = p + i * T;
      float mx = -INFINITY;
      for (int64_t j = 0; j <= i; ++j) mx = std::max(mx, row[j] * scale);
      double sum = 0;
      for (int64_t j = 0; j <= i; ++j) sum += (row[j] = std::exp(row[j] * scale - mx));
      const float inv = static_cast<float>(1.0 / sum);
      for (int64_t j = 0; j <= i; ++j) row[j] *= inv;
      std::fill(row + i + 1, row + T, 0.0f);
    }
    gemm_abt(p, vt, oh, T, hd, T);  // oh[T, hd] = P[T, T] · V[T, hd]
    scatter_head(oh, out, T, Q, h, hd, false);
  }
}

void attention_backward(const float* q, const float* k, const float* v, const float* probs,
                        const float* d_out, float* dq, float* dk, float* dv, int64_t T, int64_t H,
                        int64_t KVH, int64_t hd, std::vector<float>& scratch) {
  const int64_t Q = H * hd, KV = KVH * hd, group = H / KVH;
  const float scale = 1.0f / std::sqrt(static_cast<float>(hd));
  // Scratch: dP/dS [T, T] | transposed [T, T] | qt, kt [hd, T] | vh, doh, dot, tmp [T, hd].
  const size_t tt = static_cast<size_t>(T * T), th = static_cast<size_t>(T * hd);
  scratch.resize(std::max(scratch.size(), 2 * tt + 6 * th));
  float* ds = scratch.data();
  float* tr = ds + tt;
  float* qt = tr + tt;
  float* kt = qt + th;
  float* vh = kt + th;
  float* doh = vh + th;
  float* dot = doh + th;
  float* tmp = dot + th;
  std::fill(dk, dk + T * KV, 0.0f);
  std::fill(dv, dv + T * KV, 0.0f);
  for (int64_t h = 0; h < H; ++h) {
    const int64_t g = h / group;
    const float* p = probs + h * T * T;
    gather_head(d_out, doh, T, Q, h, hd);
    gather_head(v, vh, T, KV, g, hd);
    // dV_g += Pᵀ dO: tmp[T, hd] = Pᵀ[T, T] · (dOᵀ)[hd, T]ᵀ
    transpose(p, tr, T, T);
    transpose(doh, dot, T, hd);
    gemm_abt(tr, dot, tmp, T, hd, T);
    scatter_head(tmp, dv, T, KV, g, hd, true);
    // dP = dO Vᵀ; dS = P ⊙ (dP - rowsum(P ⊙ dP)), times the score scale.
    gemm_abt(doh, vh, ds, T, T, hd);
    for (int64_t i = 0; i < T; ++i) {
      float* row = ds + i * T;
      const float* pr = p + i * T;
      double dot_pd = 0;
      for (int64_t j = 0; j <= i; ++j) dot_pd += static_cast<double>(pr[j]) * row[j];
      for (int64_t j = 0; j <= i; ++j) row[j] = pr[j] * (row[j] - static_cast<float>(dot_pd)) * scale;
      std::fill(row + i + 1, row + T, 0.0f);
    }
    // dQ_h = dS K: tmp[T, hd] = dS[T, T] · (Kᵀ)[hd, T]ᵀ
    gather_head(k, tmp, T, KV, g, hd);
    transpose(tmp, kt, T, hd);
    gemm_abt(ds, kt, tmp, T, hd, T);
    scatter_head(tmp, dq, T, Q, h, hd, false);
    // dK_g += dSᵀ Q: tmp[T, hd] = dSᵀ[T, T] · (Qᵀ)[hd, T]ᵀ
    gather_head(q, tmp, T, Q, h, hd);
    transpose(tmp, qt, T, hd);
    transpose(ds, tr, T, T);
    gemm_abt(tr, qt, tmp, T, hd, T);
    scatter_head(tmp, dk, T, KV, g, hd, true);
  }
}

void swiglu_forward(const float* gate, const float* up, float* act, int64_t n) {
  for (int64_t i = 0; i < n; ++i) act[i] = gate[i] / (1.0f + std::exp(-gate[i])) * up[i];
}

void swiglu_backward(const float* gate, const float* up, const float* d_act, float* d_gate,
                     float* d_up, int64_t n) {
  // silu(g) = g σ(g); silu'(g) = σ(g) (1 + g (1 - σ(g))).
  for (int64_t i = 0; i < n; ++i) {
    const float s = 1.0f / (1.0f + std::exp(-gate[i]));
    const float silu = gate[i] * s;
    d_up[i] = d_act[i] * silu;
    d_gate[i] = d_act[i] * up[i] * s * (1.0f + gate[i] * (1.0f - s));
  }
}

}  // namespace flashmem::lm
