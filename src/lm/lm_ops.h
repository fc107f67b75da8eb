// The trainer's layer operations, forward and backward, on one sequence of T tokens.
// Backward functions take the forward's saved inputs; "+=" outputs accumulate, others overwrite.
#pragma once
#include <cstdint>
#include <vector>

namespace flashmem::lm {

struct RopeTable;

// y[T, D] = x / rms(x) * w, inv_rms[T] = 1 / sqrt(mean(x²) + eps).
void rms_norm_forward(const float* x, const float* w, float* y, float* inv_rms, int64_t T,
                      int64_t D, float eps);
// dx[T, D] += ∂/∂x, dw[D] += ∂/∂w of Σ dy ⊙ y.
void rms_norm_backward(const float* x, const float* w, const float* inv_rms, const float* dy,
                       float* dx, float* dw, int64_t T, int64_t D);

// Rotates every head of v[T, n_heads * hd] in place, adjacent pairs (2i, 2i+1), at position t
// for row t; inverse = true applies the transpose (the backward of the rotation).
void rope_apply(float* v, int64_t T, int64_t n_heads, int64_t hd, const RopeTable& rope,
                bool inverse);

// Y[T, rows] = X[T, cols] · W[rows, cols]ᵀ
void linear_forward(const float* w, const float* x, float* y, int64_t T, int64_t rows,
                    int64_t cols);
// dx[T, cols] = dY W (overwritten), dw[rows, cols] += dYᵀ X. `scratch` is resized as needed.
void linear_backward(const float* w, const float* x, const float* dy, float* dx, float* dw,
                     int64_t T, int64_t rows, int64_t cols, std::vector<float>& scratch);

// Causal GQA attention, scale 1/sqrt(hd): q[T, H·hd], k, v [T, KVH·hd] -> out[T, H·hd];
// probs[H, T, T] receives the probabilities (zero above the diagonal).
void attention_forward(const float* q, const float* k, const float* v, float* probs, float* out,
                       int64_t T, int64_t H, int64_t KVH, int64_t hd, std::vector<float>& scratch);
// dq (overwritten), dk, dv (overwritten) from d_out and the forward's q, k, v, probs.
void attention_backward(const float* q, const float* k, const float* v, const float* probs,
                        const float* d_out, float* dq, float* dk, float* dv, int64_t T, int64_t H,
                        int64_t KVH, int64_t hd, std::vector<float>& scratch);

// act[n] = silu(gate) ⊙ up; backward: d_gate, d_up (overwritten) from d_act.
void swiglu_forward(const float* gate, const float* up, float* act, int64_t n);
void swiglu_backward(const float* gate, const float* up, const float* d_act, float* d_gate,
                     float* d_up, int64_t n);

}  // namespace flashmem::lm
