#include "lm/induction_init.h"

#include <algorithm>
#include <cmath>

#include "data/rng.h"
#include "util/error.h"

namespace flashmem::lm {
namespace {

// Target attention logit gaps. Why these: a gap of 12 between the wanted position and the best
// other one puts ~all the weight on it (e^-12 per competitor); the match head gets 16 because its
// non-matching keys scatter by ~1/sqrt(m) of the match score (random m-dim projections).
constexpr double kPositionalGap = 12.0;
constexpr double kMatchScore = 16.0;
// The shared key word adds 4: enough to prefer the asked needle over the others (whose window
// shares only the template words) without drowning the previous-token match.
constexpr double kWindowScore = 4.0;
// Copied content is written at ~3x the norm of the current token's own embedding, so the
// prediction is the copied token, not a repeat of the current one.
constexpr double kCopyGain = 3.0;
// Tied output logits are RMSNorm(h) · E; a gain of 2.5 makes a copied token's logit stand
// ~10 above the ~1-wide spread of the others instead of ~4.
constexpr double kOutputGain = 2.5;
// Content dims are capped at this many head dims. Why: the copy head moves one head's worth
// (hd dims) of the matched token's content, so the copied token's share of its own logit is
// hd / content_dims; at d 128 (103 content dims, 62%) the copy wins over the current token, at
// d 256 with all 231 free dims as content (28%) it did not (loss 3.2 nats before training on the
// copy test of test_lm_induction_init; 1.1 with the cap at 2 heads, 1.7 at 1.5 heads).
constexpr int64_t kMaxContentHeads = 2;
// Output scale of the parts outside the circuit at the start (other heads, FFNs).
constexpr double kQuietScale = 0.1;

// rows × cols matrix with orthonormal rows (Gram-Schmidt on Gaussian rows), rows <= cols.
std::vector<double> orthonormal_rows(int64_t rows, int64_t cols, data::Rng& rng) {
  std::vector<double> m(static_cast<size_t>(rows * cols));
  for (int64_t r = 0; r < rows; ++r) {
    double* row = &m[static_cast<size_t>(r * cols)];
    for (int64_t c = 0; c < cols; ++c) row[c] = rng.normal();
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
  // With a second head in both layers, a third of the match pairs also compare the "window"
  // (tokens 3 and 4 back): a question "... for KEY is: ▁" and its needle "for KEY is: ▁ VALUE"
  // then agree on KEY, so the match picks the asked needle's value, not any value after "▁".
  // The window head needs its own key/value head: with GQA it is the first query head of key/value
  // head 1 (query head `group`), since the heads sharing key/value head 0 read the previous token.
  const bool window = c.n_heads >= 2 && c.n_kv_heads >= 2 && pairs >= 6;
  const int64_t window_head = c.group();
  InductionLayout out;
  out.window_dims = window ? 2 * (pairs / 3) : 0;
  out.match_dims = 2 * pairs - out.window_dims;
  // Content dims: the rest of the residual, at most kMaxContentHeads head dims; the dims above
  // start empty (zero in every embedding) for what deeper layers write.
  out.content_dims = std::min(D - out.match_dims - out.window_dims - 1, kMaxContentHeads * hd);
  out.bias_dim = out.content_dims;
  const int64_t m = out.match_dims, mw = out.window_dims, Dc = out.content_dims, b = out.bias_dim;
  const int64_t prev0 = b + 1, window0 = prev0 + m;

  data::Rng rng(seed ^ 0x1d0c710aull);
  float* p = params.data();

  // Embeddings: content of norm exactly 1 in [0, Dc), the constant 1, zeros in the subspaces
  // the heads write. Why exactly 1: a positional head's score is (normed bias)² times a sum of
  // ~hd/2 cosines, so a few % of norm spread between tokens would move it by more than the gap
  // between neighbouring positions.
  for (int64_t v = 0; v < c.n_vocab; ++v) {
    float* e = p + l.tok_embd + v * D;
    double norm = 0;
    std::vector<double> g(static_cast<size_t>(Dc));
    for (double& x : g) {
      x = rng.normal();
      norm += x * x;
    }
    norm = std::sqrt(norm);
    for (int64_t d = 0; d < D; ++d) e[d] = d < Dc ? static_cast<float>(g[static_cast<size_t>(d)] / norm) : 0.0f;
    e[b] = 1.0f;
  }
  // RMSNorm scales a vector of squared norm s to squared norm D: the factor is sqrt(D / s).
  // Layer 0 sees content + bias (s = 2); layer 1 also the previous-token info (+1) and the
  // window (two tokens averaged: +1/2).
  const double n0 = std::sqrt(static_cast<double>(D) / 2.0);
  const double n1 = std::sqrt(static_cast<double>(D) / (window ? 3.5 : 3.0));
  const double fraction = static_cast<double>(m) / static_cast<double>(Dc);  // |P x|² for |x| = 1

  const std::vector<double> P = orthonormal_rows(m, Dc, rng);    // [m, Dc] content -> match code
  const std::vector<double> W = orthonormal_rows(mw, Dc, rng);   // [mw, Dc] content -> window code
  const int64_t copy_dims = std::min(hd, Dc);
  const std::vector<double> C = orthonormal_rows(copy_dims, Dc, rng);  // [copy_dims, Dc]

  // Query head h and its key/value head h / group (shared with the other heads of its group).
  auto clear_head = [&](const LayerOffsets& o, int64_t h) {
    const int64_t kvh = h / c.group();
    for (int64_t r = 0; r < hd; ++r)
      for (int64_t d = 0; d < D; ++d) {
        p[o.wq + (h * hd + r) * D + d] = 0.0f;
        p[o.wk + (kvh * hd + r) * D + d] = 0.0f;
        p[o.wv + (kvh * hd + r) * D + d] = 0.0f;
      }
    for (int64_t d = 0; d < D; ++d)
      for (int64_t k = h * hd; k < (h + 1) * hd; ++k) p[o.wo + d * Q + k] = 0.0f;
  };

  // A layer-0 head attending by RoPE alone to the positions Δ back nearest `center` (Δ = 1, or
  // Δ = 3 and 4 for 3.5): score(Δ) = (α n0)² Σ_i cos((Δ - center) θ_i) / sqrt(hd). Its value is
  // `code` · content, written with norm ~1 per token into residual dims [out0, out0 + rows).
  auto positional_head = [&](int64_t h, double center, const std::vector<double>& code, int64_t rows,
                             int64_t out0) {
    const LayerOffsets& o = l.layers[0];
    const int64_t kvh = h / c.group();
    clear_head(o, h);
    auto S = [&](int64_t delta) {
      double s = 0;
      for (int64_t i = 0; i < half; ++i)
        s += std::cos((static_cast<double>(delta) - center) * theta[static_cast<size_t>(i)]);
      return s;
    };
    const auto lo = static_cast<int64_t>(std::floor(center)), hi = static_cast<int64_t>(std::ceil(center));
    double best_other = -1e30;
    for (int64_t delta = 0; delta < reach; ++delta)
      if (delta != lo && delta != hi) best_other = std::max(best_other, S(delta));
    const double gap = std::min(S(lo), S(hi)) - best_other;
    if (!(gap > 1e-3)) fail("--init-induction: RoPE cannot single out position {} back (gap {})", center, gap);
    const double alpha = std::sqrt(kPositionalGap * std::sqrt(static_cast<double>(hd)) / (gap * n0 * n0));
    for (int64_t i = 0; i < half; ++i) {
      const double t = center * theta[static_cast<size_t>(i)];
      p[o.wq + (h * hd + 2 * i) * D + b] = static_cast<float>(alpha * std::cos(t));
      p[o.wq + (h * hd + 2 * i + 1) * D + b] = static_cast<float>(-alpha * std::sin(t));
      p[o.wk + (kvh * hd + 2 * i) * D + b] = static_cast<float>(alpha);
    }
    // |code · x| ≈ n0 sqrt(rows / Dc) for a normed token: scale its output to norm ~1.
    const double beta = 1.0 / (n0 * std::sqrt(static_cast<double>(rows) / static_cast<double>(Dc)));
    for (int64_t k = 0; k < rows; ++k) {
      for (int64_t d = 0; d < Dc; ++d)
        p[o.wv + (kvh * hd + k) * D + d] = static_cast<float>(code[static_cast<size_t>(k * Dc + d)]);
      p[o.wo + (out0 + k) * Q + h * hd + k] = static_cast<float>(beta);
    }
  };
  positional_head(0, 1.0, P, m, prev0);
  if (window) positional_head(window_head, 3.5, W, mw, window0);

  // Layer 1, head 0, in the lowest-frequency pairs (rows hd - m - mw .. hd): q = γ P content
  // (current token), k = γ prev dims: score ≈ γ² n1² sqrt(m/Dc) / sqrt(hd) when the key's
  // previous token is the current token; plus q = k = γw window dims: the shared key word (half
  // of each window) adds γw² n1² / 4 / sqrt(hd).
  {
    const LayerOffsets& o = l.layers[1];
    clear_head(o, 0);
    const double gamma = std::sqrt(kMatchScore * std::sqrt(static_cast<double>(hd)) / (n1 * n1 * std::sqrt(fraction)));
    const double gamma_w = std::sqrt(kWindowScore * std::sqrt(static_cast<double>(hd)) / (n1 * n1 / 4.0));
    const int64_t row0 = hd - m - mw;
    for (int64_t k = 0; k < m; ++k) {
      for (int64_t d = 0; d < Dc; ++d)
        p[o.wq + (row0 + k) * D + d] = static_cast<float>(gamma * P[static_cast<size_t>(k * Dc + d)]);
      p[o.wk + (row0 + k) * D + prev0 + k] = static_cast<float>(gamma);
    }
    for (int64_t k = 0; k < mw; ++k) {
      p[o.wq + (row0 + m + k) * D + window0 + k] = static_cast<float>(gamma_w);
      p[o.wk + (row0 + m + k) * D + window0 + k] = static_cast<float>(gamma_w);
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
  // Heads of the circuit: layer 0 head 0 (and the window head), layer 1 head 0.
  auto in_circuit = [&](size_t layer, int64_t h) {
    return (layer <= 1 && h == 0) || (layer == 0 && window && h == window_head);
  };
  for (size_t li = 0; li < l.layers.size(); ++li) {
    const LayerOffsets& o = l.layers[li];
    for (int64_t i = 0; i < D * c.ff_dim; ++i) p[o.w_down + i] *= static_cast<float>(kQuietScale);
    for (int64_t h = 0; h < c.n_heads; ++h) {
      if (in_circuit(li, h)) continue;
      for (int64_t d = 0; d < D; ++d)
        for (int64_t k = h * hd; k < (h + 1) * hd; ++k) p[o.wo + d * Q + k] *= static_cast<float>(kQuietScale);
    }
  }
  for (int64_t d = 0; d < D; ++d) p[l.output_norm + d] = static_cast<float>(kOutputGain);
  return out;
}

}  // namespace flashmem::lm
