#include "lm/lm_params.h"

#include <fmt/format.h>

#include <cmath>

#include "data/rng.h"
#include "util/error.h"

namespace flashmem::lm {

void validate_config(const LmConfig& c) {
  // Bounds: far above anything trainable on a CPU, low enough that sizes cannot overflow.
  auto in = [](const char* name, int64_t v, int64_t lo, int64_t hi) {
    if (v < lo || v > hi) fail("{} = {} is outside [{}, {}]", name, v, lo, hi);
  };
  in("vocab", c.n_vocab, 4, 1 << 20);
  in("dim", c.dim, 2, 8192);
  in("layers", c.n_layers, 1, 256);
  in("heads", c.n_heads, 1, 256);
  in("kv-heads", c.n_kv_heads, 1, 256);
  in("ff", c.ff_dim, 1, 65536);
  in("context", c.context_length, 2, 1 << 20);
  if (c.dim % c.n_heads != 0 || c.head_dim() % 2 != 0)
    fail("dim {} must be a multiple of 2 * heads ({})", c.dim, c.n_heads);
  if (c.n_heads % c.n_kv_heads != 0) fail("kv-heads {} must divide heads {}", c.n_kv_heads, c.n_heads);
  if (!(c.rope_base > 1.0 && c.rope_base < 1e12)) fail("rope base {} is out of range", c.rope_base);
  if (!(c.rms_eps > 0 && c.rms_eps < 1)) fail("rms eps {} is out of range", c.rms_eps);
}

ParamLayout make_layout(const LmConfig& c) {
  ParamLayout l;
  size_t at = 0;
  auto take = [&](int64_t n) {
    const size_t o = at;
    at += static_cast<size_t>(n);
    return o;
  };
  const int64_t D = c.dim, Q = c.q_dim(), KV = c.kv_dim(), F = c.ff_dim;
  l.tok_embd = take(c.n_vocab * D);
  for (int64_t i = 0; i < c.n_layers; ++i) {
    LayerOffsets o;
    o.attn_norm = take(D);
    o.wq = take(Q * D);
    o.wk = take(KV * D);
    o.wv = take(KV * D);
    o.wo = take(D * Q);
    o.ffn_norm = take(D);
    o.w_gate = take(F * D);
    o.w_up = take(F * D);
    o.w_down = take(D * F);
    l.layers.push_back(o);
  }
  l.output_norm = take(D);
  l.output = c.tied_embeddings ? l.tok_embd : take(c.n_vocab * D);
  l.total = at;
  return l;
}

std::vector<ParamTensor> param_tensors(const LmConfig& c, const ParamLayout& l) {
  const int64_t D = c.dim, Q = c.q_dim(), KV = c.kv_dim(), F = c.ff_dim;
  std::vector<ParamTensor> t;
  t.push_back({"token_embd.weight", l.tok_embd, c.n_vocab, D});
  for (size_t i = 0; i < l.layers.size(); ++i) {
    const LayerOffsets& o = l.layers[i];
    auto name = [i](const char* s) { return fmt::format("blk.{}.{}", i, s); };
    t.push_back({name("attn_norm.weight"), o.attn_norm, 1, D});
    t.push_back({name("attn_q.weight"), o.wq, Q, D});
    t.push_back({name("attn_k.weight"), o.wk, KV, D});
    t.push_back({name("attn_v.weight"), o.wv, KV, D});
    t.push_back({name("attn_output.weight"), o.wo, D, Q});
    t.push_back({name("ffn_norm.weight"), o.ffn_norm, 1, D});
    t.push_back({name("ffn_gate.weight"), o.w_gate, F, D});
    t.push_back({name("ffn_up.weight"), o.w_up, F, D});
    t.push_back({name("ffn_down.weight"), o.w_down, D, F});
  }
  t.push_back({"output_norm.weight", l.output_norm, 1, D});
  if (!c.tied_embeddings) t.push_back({"output.weight", l.output, c.n_vocab, D});
  return t;
}

std::vector<float> init_params(const LmConfig& c, const ParamLayout& l, uint64_t seed,
                               double init_std) {
  std::vector<float> p(l.total, 0.0f);
  data::Rng rng(seed);
  const double residual_scale = 1.0 / std::sqrt(2.0 * static_cast<double>(c.n_layers));
  for (const ParamTensor& t : param_tensors(c, l)) {
    float* w = p.data() + t.offset;
    const int64_t n = t.rows * t.cols;
    if (t.rows == 1) {  // norm gains
      for (int64_t i = 0; i < n; ++i) w[i] = 1.0f;
      continue;
    }
    const bool residual = t.name.find("attn_output") != std::string::npos ||
                          t.name.find("ffn_down") != std::string::npos;
    const double base = init_std > 0 ? init_std : 1.0 / std::sqrt(static_cast<double>(t.cols));
    const double sd = base * (residual ? residual_scale : 1.0);
    for (int64_t i = 0; i < n; ++i) w[i] = static_cast<float>(sd * rng.normal());
  }
  return p;
}

}  // namespace flashmem::lm
