#include "train/losses.h"

#include <cmath>
#include <vector>

#include "util/error.h"

namespace flashmem {
namespace {

// log σ(x) without overflow.
double log_sigmoid(double x) { return x >= 0 ? -std::log1p(std::exp(-x)) : x - std::log1p(std::exp(x)); }
double sigmoid(double x) { return x >= 0 ? 1.0 / (1.0 + std::exp(-x)) : std::exp(x) / (1.0 + std::exp(x)); }

}  // namespace

LossKind parse_loss(std::string_view name) {
  if (name == "bce") return LossKind::kBce;
  if (name == "focal") return LossKind::kFocal;
  if (name == "bpr") return LossKind::kBpr;
  fail("--loss must be bce, focal or bpr, not '{}'", name);
}

std::string_view loss_name(LossKind kind) {
  return kind == LossKind::kBce ? "bce" : kind == LossKind::kFocal ? "focal" : "bpr";
}

float loss_and_grad(LossKind kind, const float* logits, const float* labels, const float* weights,
                    int64_t n, float* dlogits) {
  if (dlogits != nullptr)
    for (int64_t i = 0; i < n; ++i) dlogits[i] = 0.0f;
  double total = 0.0, weight_sum = 0.0;
  if (kind == LossKind::kBpr) {
    std::vector<int64_t> pos, neg;
    for (int64_t i = 0; i < n; ++i) (labels[i] > 0.5f ? pos : neg).push_back(i);
    if (pos.empty() || neg.empty()) return 0.0f;
    for (size_t j = 0; j < neg.size(); ++j) weight_sum += weights[neg[j]];
    if (weight_sum <= 0) return 0.0f;
    for (size_t j = 0; j < neg.size(); ++j) {
      const int64_t p = pos[j % pos.size()], q = neg[j];
      const double diff = static_cast<double>(logits[p]) - logits[q];  // want diff large
      total += weights[q] * -log_sigmoid(diff);
      if (dlogits != nullptr) {
        const double g = weights[q] * (sigmoid(diff) - 1.0) / weight_sum;  // d/d diff
        dlogits[p] += static_cast<float>(g);
        dlogits[q] -= static_cast<float>(g);
      }
    }
    return static_cast<float>(total / weight_sum);
  }
  for (int64_t i = 0; i < n; ++i) weight_sum += weights[i];
  if (weight_sum <= 0) return 0.0f;
  for (int64_t i = 0; i < n; ++i) {
    // Write everything for the positive class in terms of z = ±x: p_t = σ(z), dz/dx = ±1.
    const double sign = labels[i] > 0.5f ? 1.0 : -1.0;
    const double z = sign * logits[i];
    const double log_pt = log_sigmoid(z), pt = sigmoid(z);
    double loss = -log_pt, dz = pt - 1.0;  // bce: d(−log σ(z))/dz = σ(z) − 1
    if (kind == LossKind::kFocal) {
      const double gamma = kFocalGamma, one_minus = 1.0 - pt;
      const double mod = std::pow(one_minus, gamma);
      loss = -mod * log_pt;
      // d/dz [−(1−p)^γ log p] with dp/dz = p(1−p): γ p (1−p)^γ log p − (1−p)^(γ+1)
      dz = gamma * pt * mod * log_pt - mod * one_minus;
    }
    total += weights[i] * loss;
    if (dlogits != nullptr) dlogits[i] = static_cast<float>(weights[i] * sign * dz / weight_sum);
  }
  return static_cast<float>(total / weight_sum);
}

}  // namespace flashmem
