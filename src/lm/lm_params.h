// A small Llama-architecture model for in-project training: its shape (LmConfig) and all its
// parameters in one flat f32 array (LmParams) with a named offset per tensor, so the optimizer,
// gradient clipping, the reduction across threads and checkpoints treat them as one vector.
//
// Layout and semantics are exactly the engine's llama: W [rows, cols] row-major (y = W x),
// adjacent-pair RoPE on the whole head, RMSNorm with a gain, SwiGLU, untied output head.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

namespace flashmem::lm {

struct LmConfig {
  int64_t n_vocab = 0;
  int64_t dim = 128;
  int64_t n_layers = 2;
  int64_t n_heads = 4;
  int64_t n_kv_heads = 4;
  int64_t ff_dim = 384;
  double rope_base = 10000.0;  // llama's default (the engine reads it from the GGUF)
  double rms_eps = 1e-5;       // llama 2's default
  int64_t context_length = 8192;  // written to the GGUF; the longest evaluation length
  // Output head = token embedding (GGUF without output.weight; the engine ties it). Why: a head
  // that copies a token's embedding from context then scores that same token highest, so copying
  // rare tokens (digit groups seen a few times per step) needs no per-token output training.
  bool tied_embeddings = false;

  int64_t head_dim() const { return dim / n_heads; }
  int64_t q_dim() const { return dim; }
  int64_t kv_dim() const { return n_kv_heads * head_dim(); }
  int64_t group() const { return n_heads / n_kv_heads; }
};

// Throws Error naming the bad field (non-positive sizes, heads not dividing dim, odd head_dim,
// kv heads not dividing heads, absurd sizes).
void validate_config(const LmConfig& c);

// Offsets (in floats) of one layer's tensors inside the flat array.
struct LayerOffsets {
  size_t attn_norm;  // [D]
  size_t wq;         // [Q, D]
  size_t wk;         // [KV, D]
  size_t wv;         // [KV, D]
  size_t wo;         // [D, Q]
  size_t ffn_norm;   // [D]
  size_t w_gate;     // [F, D]
  size_t w_up;       // [F, D]
  size_t w_down;     // [D, F]
};

struct ParamLayout {
  size_t tok_embd;                   // [V, D]
  std::vector<LayerOffsets> layers;  // [n_layers]
  size_t output_norm;                // [D]
  size_t output;                     // [V, D]; = tok_embd when the embeddings are tied
  size_t total;                      // floats in the whole array
};

ParamLayout make_layout(const LmConfig& c);

// One named tensor of the layout (for export, checkpoints and tests).
struct ParamTensor {
  std::string name;  // GGUF tensor name, e.g. "blk.0.attn_q.weight"
  size_t offset;
  int64_t rows, cols;  // matrices [rows, cols]; vectors have rows = 1
};
std::vector<ParamTensor> param_tensors(const LmConfig& c, const ParamLayout& layout);

// Initial weights: matrices ~ N(0, std²) with std = `init_std` (GPT-2/Llama use 0.02) or, for
// init_std = 0, 1/sqrt(cols) (fan-in: attention scores start O(1), not ~0.05, so heads can sharpen
// early in a short run); residual output projections (wo, w_down) scaled by 1/sqrt(2 n_layers) so
// the residual stream's variance does not grow with depth; norm gains 1. Deterministic for the seed.
std::vector<float> init_params(const LmConfig& c, const ParamLayout& layout, uint64_t seed,
                               double init_std = 0.02);

}  // namespace flashmem::lm
