// Training losses of the indexer over one sample's chunk logits (REFERENCE.md): binary cross
// entropy, focal loss (γ = 2) and pairwise BPR. Each returns the weighted mean loss and writes
// dL/dlogit; all are written in terms of log-sigmoid so that large logits do not overflow.
#pragma once
#include <cstdint>
#include <string_view>

namespace flashmem {

enum class LossKind { kBce, kFocal, kBpr };
LossKind parse_loss(std::string_view name);  // "bce" | "focal" | "bpr", else Error
std::string_view loss_name(LossKind kind);

constexpr float kFocalGamma = 2.0f;  // the reference's γ (focal loss paper default)

// logits[n], labels[n] in {0, 1}, weights[n] >= 0 -> loss; dlogits[n] (may be nullptr).
//   bce:   Σ w_i ℓ_i / Σ w_i,  ℓ = −y log σ(x) − (1−y) log(1−σ(x))
//   focal: the same with ℓ = −(1−p_t)^γ log p_t,  p_t = σ(x) if y = 1 else 1 − σ(x)
//   bpr:   negatives paired in order with positives (negative j with positive j mod P):
//          Σ_j w_j softplus(x_neg_j − x_pos) / Σ_j w_j; 0 without a positive or a negative.
float loss_and_grad(LossKind kind, const float* logits, const float* labels, const float* weights,
                    int64_t n, float* dlogits);

}  // namespace flashmem
