#include <fmt/format.h>

#include <cmath>
#include <cstdint>
#include <functional>

#include "model/model_bind.h"
#include "util/error.h"

namespace flashmem {

// Matrix weight types the kernels implement.
const std::vector<DType> kMatrixTypes = {DType::F32,  DType::F16,  DType::BF16, DType::Q8_0,
                                         DType::Q4_0, DType::Q4_1, DType::Q5_0, DType::Q5_1,
                                         DType::Q2_K, DType::Q3_K, DType::Q4_K, DType::Q5_K,
                                         DType::Q6_K, DType::IQ4_NL};

Matrix bind_matrix(const GgufFile& file, const std::string& name, int64_t rows, int64_t cols) {
  const GgufTensor& t = file.tensor(name, {cols, rows}, kMatrixTypes);
  return Matrix{t.type, t.data, rows, cols};
}

const float* bind_vector(const GgufFile& file, const std::string& name, int64_t n) {
  const GgufTensor& t = file.tensor(name, {n}, {DType::F32});
  if (reinterpret_cast<uintptr_t>(t.data) % alignof(float) != 0)
    fail("{}: tensor '{}' data is not 4-byte aligned", file.name(), name);
  return reinterpret_cast<const float*>(t.data);
}

Matrix row_block(const Matrix& m, int64_t row0, int64_t rows) {
  return Matrix{m.type, static_cast<const uint8_t*>(m.data) + row_bytes(m.type, m.cols) * row0,
                rows, m.cols};
}

MatrixStack bind_stack(const GgufFile& file, const std::string& name, int64_t n, int64_t rows,
                       int64_t cols) {
  const GgufTensor& t = file.tensor(name, {cols, rows, n}, kMatrixTypes);
  return MatrixStack{t.type, t.data, n, rows, cols};
}

namespace {

// Q, K and V projections (+ biases): attn_qkv [Q + 2 KV, D] when the file fuses them (phi3, as
// llama.cpp accepts for any arch), else attn_q / attn_k / attn_v.
void bind_qkv(const GgufFile& f, const ModelConfig& c, LayerWeights& l,
              const std::function<std::string(const char*)>& name) {
  const int64_t D = c.dim, Q = c.q_dim(), KV = c.kv_dim();
  if (f.find_tensor(name("attn_qkv.weight")) != nullptr) {
    const Matrix qkv = bind_matrix(f, name("attn_qkv.weight"), Q + 2 * KV, D);
    l.wq = row_block(qkv, 0, Q);
    l.wk = row_block(qkv, Q, KV);
    l.wv = row_block(qkv, Q + KV, KV);
    if (c.arch->qkv_bias || f.find_tensor(name("attn_qkv.bias")) != nullptr) {
      l.bq = bind_vector(f, name("attn_qkv.bias"), Q + 2 * KV);
      l.bk = l.bq + Q;
      l.bv = l.bq + Q + KV;
    }
    return;
  }
  l.wq = bind_matrix(f, name("attn_q.weight"), Q, D);
  l.wk = bind_matrix(f, name("attn_k.weight"), KV, D);
  l.wv = bind_matrix(f, name("attn_v.weight"), KV, D);
  if (c.arch->qkv_bias || f.find_tensor(name("attn_q.bias")) != nullptr) {
    l.bq = bind_vector(f, name("attn_q.bias"), Q);
    l.bk = bind_vector(f, name("attn_k.bias"), KV);
    l.bv = bind_vector(f, name("attn_v.bias"), KV);
  }
}

}  // namespace

std::shared_ptr<Model> Model::from_gguf(GgufFile file) {
  std::shared_ptr<Model> model(new Model(std::move(file)));
  const GgufFile& f = model->file_;
  ModelConfig& c = model->config_;
  c = read_model_config(f);
  ModelWeights& w = model->weights_;
  const int64_t D = c.dim, Q = c.q_dim(), F = c.ff_dim;

  w.token_embd = bind_matrix(f, "token_embd.weight", c.n_vocab, D);
  w.output_norm = bind_vector(f, "output_norm.weight", D);
  w.tied_output = c.arch->always_tied || f.find_tensor("output.weight") == nullptr;
  w.output = w.tied_output ? w.token_embd : bind_matrix(f, "output.weight", c.n_vocab, D);

  // Long-context RoPE factors (Phi-3 128K, LongRoPE) change the rotation with the context
  // length; without them the model would run, silently wrong.
  for (const char* factors : {"rope_factors_long.weight", "rope_factors_short.weight"})
    if (f.find_tensor(factors) != nullptr || f.find_tensor(fmt::format("blk.0.{}", factors)) != nullptr)
      fail("{}: tensor '{}' (LongRoPE frequency factors) is not supported", f.name(), factors);
  // Llama 3.1-style frequency factors: angle_i = pos · f_i / factor_i, one table for all layers.
  if (c.arch->latent_moe && f.find_tensor("rope_freqs.weight") != nullptr)
    fail("{}: tensor 'rope_freqs.weight' with deepseek2 (llama.cpp ignores it) is not supported", f.name());
  if (f.find_tensor("rope_freqs.weight") != nullptr) {
    w.rope_freq_factors = bind_vector(f, "rope_freqs.weight", c.rope_dim / 2);
    for (int64_t i = 0; i < c.rope_dim / 2; ++i)
      if (!(w.rope_freq_factors[i] > 0.0f) || !std::isfinite(w.rope_freq_factors[i]))
        fail("{}: tensor 'rope_freqs.weight' element {} is {}, not a positive finite factor", f.name(), i,
             w.rope_freq_factors[i]);
  }
  w.layers.resize(static_cast<size_t>(c.n_layers));
  for (int64_t i = 0; i < c.n_layers; ++i) {
    LayerWeights& l = w.layers[static_cast<size_t>(i)];
    auto name = [i](const char* suffix) { return fmt::format("blk.{}.{}", i, suffix); };
    l.attn_norm = bind_vector(f, name("attn_norm.weight"), D);
    if (c.arch->latent_moe) {
      bind_latent_moe_layer(f, c, i, l);
      continue;
    }
    bind_qkv(f, c, l, name);
    if (c.arch->qk_norm) {
      l.q_norm = bind_vector(f, name("attn_q_norm.weight"), c.head_dim);
      l.k_norm = bind_vector(f, name("attn_k_norm.weight"), c.head_dim);
    }
    l.wo = bind_matrix(f, name("attn_output.weight"), D, Q);
    l.ffn_norm = bind_vector(f, name("ffn_norm.weight"), D);
    if (c.arch->post_norms) {
      l.attn_post_norm = bind_vector(f, name("post_attention_norm.weight"), D);
      l.ffn_post_norm = bind_vector(f, name("post_ffw_norm.weight"), D);
    }
    bind_dense_ffn(f, i, F, D, l);
  }
  return model;
}

void bind_dense_ffn(const GgufFile& f, int64_t layer, int64_t F, int64_t D, LayerWeights& l) {
  auto name = [layer](const char* suffix) { return fmt::format("blk.{}.{}", layer, suffix); };
  // A file without ffn_gate fuses gate and up in ffn_up [2F, D], gate rows first (phi3).
  if (f.find_tensor(name("ffn_gate.weight")) != nullptr) {
    l.w_gate = bind_matrix(f, name("ffn_gate.weight"), F, D);
    l.w_up = bind_matrix(f, name("ffn_up.weight"), F, D);
  } else {
    const Matrix gate_up = bind_matrix(f, name("ffn_up.weight"), 2 * F, D);
    l.w_gate = row_block(gate_up, 0, F);
    l.w_up = row_block(gate_up, F, F);
  }
  l.w_down = bind_matrix(f, name("ffn_down.weight"), D, F);
}

uint64_t matrix_bytes(const Matrix& m) { return row_bytes(m.type, m.cols) * m.rows; }

uint64_t Model::decode_weight_bytes() const {
  const auto bytes = matrix_bytes;
  const ModelConfig& c = config_;
  uint64_t total = 0;
  for (const LayerWeights& l : weights_.layers) {
    total += latent_moe_decode_bytes(c, l);
    total += bytes(l.wq) + bytes(l.wk) + bytes(l.wv) + bytes(l.wo);
    total += bytes(l.w_gate) + bytes(l.w_up) + bytes(l.w_down);
    total += (l.attn_post_norm != nullptr ? 4 : 2) * c.dim * sizeof(float);
    if (l.q_norm != nullptr) total += 2 * c.head_dim * sizeof(float);
    if (l.bq != nullptr) total += (c.q_dim() + 2 * c.kv_dim()) * sizeof(float);
  }
  total += bytes(weights_.output) + c.dim * sizeof(float);
  total += row_bytes(weights_.token_embd.type, c.dim);
  return total;
}

}  // namespace flashmem
