#include "lm/lm_ops.h"

#include <algorithm>
#include <cmath>

#include "lm/gemm.h"
#include "lm/lm_forward.h"
#include "tensor/rope.h"

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
    for (int64_t h = 0; h < n_heads; ++h)
      rope_rotate(v + (t * n_heads + h) * hd, hd, RopeStyle::kAdjacent, cs, sn, inverse);
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

// Causal attention works on blocks of query rows: rows [i0, i1) only see keys [0, i1), so the
// products skip the upper triangle (about half of the work at long lengths).
// 64 rows: at T = 1024 the skipped area is 47% of the square, and the per-block copies of the
// key/value prefix (hd × i1) stay small next to the block's products (64 × i1 × hd).
constexpr int64_t kRowBlock = 64;

void attention_forward(const float* q, const float* k, const float* v, float* probs, float* out,
                       int64_t T, int64_t H, int64_t KVH, int64_t hd, std::vector<float>& scratch) {
  const int64_t Q = H * hd, KV = KVH * hd, group = H / KVH;
  const float scale = 1.0f / std::sqrt(static_cast<float>(hd));
  const int64_t B = std::min(kRowBlock, T);
  // Scratch: qh, kh, vh [T, hd] | vt [hd, T] | oh [T, hd] | block scores [B, T] | vt prefix [hd, T].
  const size_t th = static_cast<size_t>(T * hd);
  scratch.resize(std::max(scratch.size(), 5 * th + static_cast<size_t>(B * T) + th));
  float* qh = scratch.data();
  float* kh = qh + th;
  float* vh = kh + th;
  float* vt = vh + th;
  float* oh = vt + th;
  float* sb = oh + th;
  float* vp = sb + B * T;
  for (int64_t h = 0; h < H; ++h) {
    const int64_t g = h / group;
    gather_head(q, qh, T, Q, h, hd);
    gather_head(k, kh, T, KV, g, hd);
    gather_head(v, vh, T, KV, g, hd);
    transpose(vh, vt, T, hd);
    float* p = probs + h * T * T;  // [T, T]
    for (int64_t i0 = 0; i0 < T; i0 += B) {
      const int64_t i1 = std::min(T, i0 + B), m = i1 - i0;
      gemm_abt(qh + i0 * hd, kh, sb, m, i1, hd);  // sb[m, i1] = Q[i0:i1] · K[0:i1]ᵀ
      for (int64_t r = 0; r < m; ++r) {
        const int64_t i = i0 + r;
        float* row = sb + r * i1;
        float mx = -INFINITY;
        for (int64_t j = 0; j <= i; ++j) mx = std::max(mx, row[j] * scale);
        double sum = 0;
        for (int64_t j = 0; j <= i; ++j) sum += (row[j] = std::exp(row[j] * scale - mx));
        const float inv = static_cast<float>(1.0 / sum);
        for (int64_t j = 0; j <= i; ++j) row[j] *= inv;
        std::fill(row + i + 1, row + i1, 0.0f);
        std::copy_n(row, i1, p + i * T);
        std::fill(p + i * T + i1, p + (i + 1) * T, 0.0f);
      }
      for (int64_t d = 0; d < hd; ++d) std::copy_n(vt + d * T, i1, vp + d * i1);  // Vᵀ[:, 0:i1]
      gemm_abt(sb, vp, oh + i0 * hd, m, hd, i1);  // O[i0:i1] = P[i0:i1, 0:i1] · V[0:i1]
    }
    scatter_head(oh, out, T, Q, h, hd, false);
  }
}

void attention_backward(const float* q, const float* k, const float* v, const float* probs,
                        const float* d_out, float* dq, float* dk, float* dv, int64_t T, int64_t H,
                        int64_t KVH, int64_t hd, std::vector<float>& scratch) {
  const int64_t Q = H * hd, KV = KVH * hd, group = H / KVH;
  const float scale = 1.0f / std::sqrt(static_cast<float>(hd));
  const int64_t B = std::min(kRowBlock, T);
  // Scratch: qh, kh, vh, doh, dqh, dkh, dvh [T, hd] | kt [hd, T] | kp [hd, T] | ds, dsT, pT
  // [B, T] each | qbt, dobt [hd, B] | tmp [T, hd].
  const size_t th = static_cast<size_t>(T * hd), bt = static_cast<size_t>(B * T),
               hb = static_cast<size_t>(hd * B);
  scratch.resize(std::max(scratch.size(), 10 * th + 3 * bt + 2 * hb));
  float* qh = scratch.data();
  float* kh = qh + th;
  float* vh = kh + th;
  float* doh = vh + th;
  float* dqh = doh + th;
  float* dkh = dqh + th;
  float* dvh = dkh + th;
  float* kt = dvh + th;
  float* kp = kt + th;
  float* tmp = kp + th;
  float* ds = tmp + th;
  float* dst = ds + bt;
  float* pt = dst + bt;
  float* qbt = pt + bt;
  float* dobt = qbt + hb;
  std::fill(dk, dk + T * KV, 0.0f);
  std::fill(dv, dv + T * KV, 0.0f);
  for (int64_t h = 0; h < H; ++h) {
    const int64_t g = h / group;
    const float* p = probs + h * T * T;
    gather_head(q, qh, T, Q, h, hd);
    gather_head(k, kh, T, KV, g, hd);
    gather_head(v, vh, T, KV, g, hd);
    gather_head(d_out, doh, T, Q, h, hd);
    transpose(kh, kt, T, hd);
    std::fill(dkh, dkh + th, 0.0f);
    std::fill(dvh, dvh + th, 0.0f);
    for (int64_t i0 = 0; i0 < T; i0 += B) {
      const int64_t i1 = std::min(T, i0 + B), m = i1 - i0;
      // dP[m, i1] = dO[i0:i1] · V[0:i1]ᵀ; dS = P ⊙ (dP - rowsum(P ⊙ dP)) · scale.
      gemm_abt(doh + i0 * hd, vh, ds, m, i1, hd);
      for (int64_t r = 0; r < m; ++r) {
        const int64_t i = i0 + r;
        float* row = ds + r * i1;
        const float* pr = p + i * T;
        double dot_pd = 0;
        for (int64_t j = 0; j <= i; ++j) dot_pd += static_cast<double>(pr[j]) * row[j];
        for (int64_t j = 0; j <= i; ++j) row[j] = pr[j] * (row[j] - static_cast<float>(dot_pd)) * scale;
        std::fill(row + i + 1, row + i1, 0.0f);
      }
      // dQ[i0:i1] = dS · K[0:i1]
      for (int64_t d = 0; d < hd; ++d) std::copy_n(kt + d * T, i1, kp + d * i1);
      gemm_abt(ds, kp, dqh + i0 * hd, m, hd, i1);
      // dK[0:i1] += dSᵀ · Q[i0:i1];  dV[0:i1] += Pᵀ · dO[i0:i1]
      transpose(ds, dst, m, i1);
      transpose(qh + i0 * hd, qbt, m, hd);
      gemm_abt(dst, qbt, tmp, i1, hd, m);
      for (int64_t x = 0; x < i1 * hd; ++x) dkh[x] += tmp[x];
      for (int64_t r = 0; r < m; ++r) std::copy_n(p + (i0 + r) * T, i1, ds + r * i1);  // P block
      transpose(ds, pt, m, i1);
      transpose(doh + i0 * hd, dobt, m, hd);
      gemm_abt(pt, dobt, tmp, i1, hd, m);
      for (int64_t x = 0; x < i1 * hd; ++x) dvh[x] += tmp[x];
    }
    scatter_head(dqh, dq, T, Q, h, hd, false);
    scatter_head(dkh, dk, T, KV, g, hd, true);
    scatter_head(dvh, dv, T, KV, g, hd, true);
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
