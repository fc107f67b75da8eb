// Binding GGUF tensors to weight views (model_load.cpp), shared by the per-arch binders.
#pragma once
#include <string>

#include "model/model.h"

namespace flashmem {

// W [rows, cols] (GGUF ne = [cols, rows]) in a type the kernels implement; throws Error naming
// the tensor when it is missing or mis-shaped.
Matrix bind_matrix(const GgufFile& file, const std::string& name, int64_t rows, int64_t cols);
// [n] f32, 4-byte aligned.
const float* bind_vector(const GgufFile& file, const std::string& name, int64_t n);
// [n, rows, cols] (GGUF ne = [cols, rows, n]).
MatrixStack bind_stack(const GgufFile& file, const std::string& name, int64_t n, int64_t rows,
                       int64_t cols);
// Rows [row0, row0 + rows) of m: rows are stored one after another, whatever the type.
Matrix row_block(const Matrix& m, int64_t row0, int64_t rows);
// The dense SwiGLU/GeGLU FFN of `layer`: ffn_gate, ffn_up [F, D] (or one fused ffn_up [2F, D],
// gate rows first), ffn_down [D, F].
void bind_dense_ffn(const GgufFile& file, int64_t layer, int64_t F, int64_t D, LayerWeights& l);
uint64_t matrix_bytes(const Matrix& m);

// deepseek2 layer `layer` after attn_norm (model_load_latent.cpp): latent attention, attn_output,
// ffn_norm and the dense or MoE FFN.
void bind_latent_moe_layer(const GgufFile& file, const ModelConfig& c, int64_t layer, LayerWeights& l);
// Weight bytes one decode step of a single token reads in the layer's latent attention and MoE
// FFN (the n_used routed experts, not all): 0 for other archs.
uint64_t latent_moe_decode_bytes(const ModelConfig& c, const LayerWeights& l);

}  // namespace flashmem
