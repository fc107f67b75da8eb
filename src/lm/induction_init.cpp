#include "lm/induction_init.h"

#include <algorithm>
#include <cmath>

#include "eval/rng.h"
#include "util/error.h"

namespace flashmem::lm {
namespace {

// Target attention logit gaps. Why these: a gap of 12 between the wanted position and the best
// other one puts ~all the weight on it (e^-12 per competitor); the match head gets 16 because its
// non-matching keys scatter by ~1/sqrt(m) of the match score (random m-dim projections).
constexpr double kPositionalGap = 12.0;
constexpr double kMatchScore = 16.0;
// Copied content is written at ~3x the norm of the current token's own embedding, so the
// prediction is the copied token, not a repeat of the current one.
constexpr double kCopyGain = 3.0;
// Tied output logits are RMSNorm(h) · E; a gain of 2.5 makes a copied token's logit stand
// ~10 above the ~1-wide spread of the others instead of ~4.
constexpr double kOutputGain = 2.5;
// Output scale of the parts outside the circuit at the start (other heads, FFNs).
constexpr double kQuietScale = 0.1;

// rows × cols matrix with orthonormal rows (Gram-Schmidt on Gaussian rows), rows <= cols.
std::vector<double> orthonormal_rows(int64_t rows, int64_t cols, eval::Rng& rng) {
  auto normal = [&] {
    const double u1 = 1.0 - rng.uniform(), u2 = rng.uniform();
    return std::sqrt(-2.0 * std::log(u1)) * std::cos(2.0 * M_PI * u2);
  };
  std::vector<double> m(static_cast<size_t>(rows * cols));
  for (int64_t r = 0; r < rows; ++r) {
    double* row = &m[static_cast<size_t>(r * cols)];
    for (int64_t c = 0; c < cols; ++c) row[c] = normal();
    for (int64_t p = 0; p < r; ++p) {
      const double* prev = &m[static_cast<size_t>(p * cols)];
      double dot = 0;
      for (int64_t c = 0; c < cols; ++c) dot += row[c] * prev[c];
      for (int64_t c = 0; c < cols; ++c) row[c] -= dot * prev[c];
    }
    double norm = 0;
    for (int64_t c = 0; c < cols; ++c) norm += row[c] * row[c];
    norm = std::sqrt(norm);
    for (int64_t c = 0; c < cols; ++c) row[c] /= norm;
  }
  return m;
}

}  // namespace

InductionLayout init_induction_circuit(const LmConfig& c, const ParamLayout& l, uint64_t seed,
                                       int64_t reach, std::vector<float>& params) {
  if (!c.tied_embeddings) fail("--init-induction needs --tie-embeddings (the copy writes embeddings)");
  if (c.n_layers < 2) fail("--init-induction needs at least 2 layers");
  if (reach < 2) fail("--init-induction: reach {} must be >= 2", reach);
  const int64_t D = c.dim, Q = c.q_dim(), hd = c.head_dim(), half = hd / 2;
  std::vector<double> theta(static_cast<size_t>(half));  // RoPE angle per position of pair i
  for (int64_t i = 0; i < half; ++i)
    theta[static_cast<size_t>(i)] = std::pow(c.rope_base, -2.0 * static_cast<double>(i) / static_cast<double>(hd));

  // Match pairs: the lowest-frequency ones, turning at most 0.5 rad over `reach` (cos >= 0.88),
  // capped so the content keeps at least 3/4 of the residual.
  int64_t pairs = 0;
  while (pairs < half && theta[static_cast<size_t>(half - 1 - pairs)] * static_cast<double>(reach) <= 0.5) ++pairs;
  pairs = std::min(pairs, D / 8);
  if (pairs < 4)
    fail("--init-induction: only {} RoPE pairs of head dim {} stay still over {} positions at base "
         "{}; need 4 (raise --rope-base or the head dim)", pairs, hd, reach, c.rope_base);
  InductionLayout out;
  out.match_dims = 2 * pairs;
  out.content_dims = D - out.match_dims - 1;
  out.bias_dim = out.content_dims;
  const int64_t m = out.match_dims, Dc = out.content_dims, b = out.bias_dim, prev0 = b + 1;

  eval::Rng rng(seed ^ 0x1d0c710aull);
  float* p = params.data();
  auto normal = [&] {
    const double u1 = 1.0 - rng.uniform(), u2 = rng.uniform();
    return std::sqrt(-2.0 * std::log(u1)) * std::cos(2.0 * M_PI * u2);
  };

  // Embeddings: content of norm exactly 1 in [0, Dc), the constant 1, zeros in the
  // previous-token dims. Why exactly 1: the positional head's score is (normed bias)² times a
  // sum of ~hd/2 cosines, so a few % of norm spread between tokens would move it by more than
  // the gap between neighbouring positions.
  for (int64_t v = 0; v < c.n_vocab; ++v) {
    float* e = p + l.tok_embd + v * D;
    double norm = 0;
    std::vector<double> g(static_cast<size_t>(Dc));
    for (double& x : g) {
      x = normal();
      norm += x * x;
    }
    norm = std::sqrt(norm);
    for (int64_t d = 0; d < D; ++d) e[d] = d < Dc ? static_cast<float>(g[static_cast<size_t>(d)] / norm) : 0.0f;
    e[b] = 1.0f;
  }
  // RMSNorm scales a vector of squared norm s to squared norm D: the factor is sqrt(D / s).
  // Layer 0 sees content + bias (s = 2); layer 1 also the previous-token info (s = 3).
  const double n0 = std::sqrt(static_cast<double>(D) / 2.0);
  const double n1 = std::sqrt(static_cast<double>(D) / 3.0);

  const std::vector<double> P = orthonormal_rows(m, Dc, rng);   // [m, Dc] content -> match code
  const int64_t copy_dims = std::min(hd, Dc);
  const std::vector<double> C = orthonormal_rows(copy_dims, Dc, rng);  // [copy_dims, Dc]
  const auto match_fraction = static_cast<double>(m) / static_cast<double>(Dc);

  auto clear_head0 = [&](const LayerOffsets& o) {
    for (int64_t r = 0; r < hd; ++r)
      for (int64_t d = 0; d < D; ++d) {
        p[o.wq + r * D + d] = 0.0f;
        p[o.wk + r * D + d] = 0.0f;
        p[o.wv + r * D + d] = 0.0f;
      }
    for (int64_t d = 0; d < D; ++d)
      for (int64_t k = 0; k < hd; ++k) p[o.wo + d * Q + k] = 0.0f;
  };

  // Layer 0, head 0: score(Δ) = (α n0)² Σ_i cos((Δ-1) θ_i) / sqrt(hd), largest at Δ = 1.
  {
    const LayerOffsets& o = l.layers[0];
    clear_head0(o);
    auto S = [&](int64_t delta) {
      double s = 0;
      for (int64_t i = 0; i < half; ++i) s += std::cos(static_cast<double>(delta - 1) * theta[static_cast<size_t>(i)]);
      return s;
    };
    double best_other = S(0);
    for (int64_t delta = 2; delta < reach; ++delta) best_other = std::max(best_other, S(delta));
    const double gap = S(1) - best_other;
    if (!(gap > 1e-3)) fail("--init-induction: RoPE cannot single out the previous position (gap {})", gap);
    const double alpha = std::sqrt(kPositionalGap * std::sqrt(static_cast<double>(hd)) / (gap * n0 * n0));
    for (int64_t i = 0; i < half; ++i) {
      const double t = theta[static_cast<size_t>(i)];
      p[o.wq + (2 * i) * D + b] = static_cast<float>(alpha * std::cos(t));
      p[o.wq + (2 * i + 1) * D + b] = static_cast<float>(-alpha * std::sin(t));
      p[o.wk + (2 * i) * D + b] = static_cast<float>(alpha);
    }
    // Value = P · content; output into the previous-token dims with norm ~1 (|P x| ≈ n0 sqrt(m/Dc)).
    const double beta = 1.0 / (n0 * std::sqrt(match_fraction));
    for (int64_t k = 0; k < m; ++k) {
      for (int64_t d = 0; d < Dc; ++d) p[o.wv + k * D + d] = static_cast<float>(P[static_cast<size_t>(k * Dc + d)]);
      p[o.wo + (prev0 + k) * Q + k] = static_cast<float>(beta);
    }
  }

  // Layer 1, head 0: q = γ P content (current), k = γ prev dims, in the lowest-frequency pairs;
  // match score ≈ γ² n1² sqrt(m/Dc) / sqrt(hd) (|P x|² ≈ m/Dc for content of norm 1).
  {
    const LayerOffsets& o = l.layers[1];
    clear_head0(o);
    const double gamma = std::sqrt(kMatchScore * std::sqrt(static_cast<double>(hd)) /
                                   (n1 * n1 * std::sqrt(match_fraction)));
    for (int64_t k = 0; k < m; ++k) {
      const int64_t row = hd - m + k;  // pairs half - m/2 .. half - 1
      for (int64_t d = 0; d < Dc; ++d)
        p[o.wq + row * D + d] = static_cast<float>(gamma * P[static_cast<size_t>(k * Dc + d)]);
      p[o.wk + row * D + prev0 + k] = static_cast<float>(gamma);
    }
    // Copy: value = C · content, output C^T · value · δ with |C^T C x| ≈ n1 sqrt(copy_dims/Dc).
    const double delta = kCopyGain / (n1 * std::sqrt(static_cast<double>(copy_dims) / static_cast<double>(Dc)));
    for (int64_t k = 0; k < copy_dims; ++k)
      for (int64_t d = 0; d < Dc; ++d) {
        const double ckd = C[static_cast<size_t>(k * Dc + d)];
        p[o.wv + k * D + d] = static_cast<float>(ckd);
        p[o.wo + d * Q + k] = static_cast<float>(delta * ckd);
      }
  }

  // Every other head and every FFN starts quiet (their outputs scaled down) so their random
  // output does not blur the subspaces the circuit reads.
  for (size_t li = 0; li < l.layers.size(); ++li) {
    const LayerOffsets& o = l.layers[li];
    for (int64_t i = 0; i < D * c.ff_dim; ++i) p[o.w_down + i] *= static_cast<float>(kQuietScale);
    for (int64_t d = 0; d < D; ++d)
      for (int64_t k = li < 2 ? hd : 0; k < Q; ++k) p[o.wo + d * Q + k] *= static_cast<float>(kQuietScale);
  }
  for (int64_t d = 0; d < D; ++d) p[l.output_norm + d] = static_cast<float>(kOutputGain);
  return out;
}

}  // namespace flashmem::lm
