// A loaded model: validated config + weight views into the GGUF file in memory (mapped, or read
// once onto huge pages: WeightMemory).
#pragma once
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "gguf/gguf.h"
#include "model/config.h"
#include "tensor/dtype.h"

namespace flashmem {

// A weight matrix W [rows, cols] in its storage type, row-major (GGUF ne = [cols, rows]).
struct Matrix {
  DType type = DType::F32;
  const void* data = nullptr;
  int64_t rows = 0;
  int64_t cols = 0;
};

// n matrices [rows, cols] of one type stored one after another (a 3-D GGUF tensor, ne = [cols,
// rows, n]): MoE experts, MLA's per-head W_kb / W_vb. at(i) is a view, never a copy.
struct MatrixStack {
  DType type = DType::F32;
  const void* data = nullptr;
  int64_t n = 0;
  int64_t rows = 0;
  int64_t cols = 0;
  Matrix at(int64_t i) const {
    return Matrix{type, static_cast<const uint8_t*>(data) + row_bytes(type, cols) * rows * i, rows, cols};
  }
};

// deepseek2's latent attention (ModelConfig::mla); wq holds attn_q when there is no q_lora.
struct LatentAttentionWeights {
  Matrix wq_a;                       // [q_lora, D] (q_lora > 0)
  const float* q_a_norm = nullptr;   // [q_lora]
  Matrix wq_b;                       // [n_heads*(nope+rope), q_lora] (q_lora > 0)
  Matrix wkv_a;                      // [kv_lora + rope, D] attn_kv_a_mqa: latent | k_pe
  const float* kv_a_norm = nullptr;  // [kv_lora]
  MatrixStack wk_b;                  // [n_heads, kv_lora, nope] absorbs q_nope into the latent
  MatrixStack wv_b;                  // [n_heads, v_head_dim, kv_lora] expands the latent output
};

// A mixture-of-experts FFN layer (ModelConfig::moe).
struct ExpertWeights {
  Matrix router;                       // [n_experts, D] ffn_gate_inp
  const float* selection_bias = nullptr;  // [n_experts] exp_probs_b.bias (selection only) or nullptr
  MatrixStack gate;                    // [n_experts, expert_ff, D] (a fused ffn_gate_up_exps' gate rows)
  MatrixStack up;                      // [n_experts, expert_ff, D]
  MatrixStack down;                    // [n_experts, D, expert_ff]
  Matrix shared_gate;                  // [n_shared*expert_ff, D] (n_shared > 0)
  Matrix shared_up;                    // [n_shared*expert_ff, D]
  Matrix shared_down;                  // [D, n_shared*expert_ff]
};

struct LayerWeights {
  const float* attn_norm = nullptr;  // [D]
  // Separate attn_{q,k,v} or consecutive row blocks of one fused attn_qkv [Q + 2 KV, D].
  Matrix wq;                         // [n_heads*head_dim, D]
  Matrix wk;                         // [n_kv_heads*head_dim, D]
  Matrix wv;                         // [n_kv_heads*head_dim, D]
  const float* bq = nullptr;         // [n_heads*head_dim] (nullptr: no biases)
  const float* bk = nullptr;         // [n_kv_heads*head_dim]
  const float* bv = nullptr;         // [n_kv_heads*head_dim]
  const float* q_norm = nullptr;     // [head_dim] (qk_norm archs only)
  const float* k_norm = nullptr;     // [head_dim]
  const float* attn_post_norm = nullptr;  // [D] (post_norms archs only)
  const float* ffn_post_norm = nullptr;   // [D]
  Matrix wo;                         // [D, n_heads*head_dim]
  const float* ffn_norm = nullptr;   // [D]
  Matrix w_gate;                     // [F, D] (rows [0, F) of a fused ffn_up [2F, D])
  Matrix w_up;                       // [F, D] (rows [F, 2F) of a fused ffn_up)
  Matrix w_down;                     // [D, F]
  LatentAttentionWeights mla;        // latent_moe archs (wq/wk/wv unused but wq without q_lora)
  ExpertWeights moe;                 // MoE layers (w_gate/w_up/w_down unused there)
};

struct ModelWeights {
  Matrix token_embd;                 // [n_vocab, D]
  std::vector<LayerWeights> layers;  // [n_layers]
  const float* output_norm = nullptr;  // [D]
  Matrix output;                     // [n_vocab, D] (== token_embd when tied)
  bool tied_output = false;
  // [rope_dim / 2] per-frequency divisors from `rope_freqs.weight` (Llama 3.1+ files: the
  // converter bakes the "llama3" long-context scaling into it), or nullptr: RoPE unscaled.
  const float* rope_freq_factors = nullptr;
};

// How Model::load brings the weights into memory (util/mapped_file.h's FileMemory): kMap maps
// the file (the default, as llama.cpp does); kHugePages reads it once onto 2 MiB pages, which
// needs the file's size in available memory. Not the default: on the 2-core VM where it was
// measured it decoded faster at 1K context, and at 16K slower in one session and faster in the
// next (docs/BENCHMARKS.md, tenth and eleventh sessions).
enum class WeightMemory { kMap, kHugePages };
// "map" | "huge" (the CLI's --weights-memory); throws Error naming the flag's values.
WeightMemory parse_weight_memory(std::string_view text);
// How the weights sit in memory, for reports (bench, serve): "mapped from the file (4 KiB
// page-cache pages; THP madvise)" or "read onto huge pages, 104.9 of 133.4 MB file on 2 MiB pages
// (THP madvise)".
std::string weight_memory_text(bool copied, double huge_page_bytes, double file_bytes, std::string_view thp_mode);

class Model {
 public:
  // Opens, validates and binds a GGUF model. Throws Error on anything malformed.
  // kHugePages throws Error when the file does not fit in the machine's available memory with
  // 512 MiB to spare (a copy that large would end in an out-of-memory kill, not an error).
  static std::shared_ptr<Model> load(const std::string& path, WeightMemory memory = WeightMemory::kMap);
  // Binds an already parsed file (the fuzzer and tests use this); `file` must stay alive as
  // long as the Model (it is moved in).
  static std::shared_ptr<Model> from_gguf(GgufFile file);

  const ModelConfig& config() const { return config_; }
  const ModelWeights& weights() const { return weights_; }
  const GgufFile& file() const { return file_; }
  // Bytes of the file's copy on huge pages now, at most the file's size (0 for the map:
  // page-cache pages are 4 KiB).
  uint64_t weights_on_huge_pages() const;
  // Bytes of weights one decode step reads: every layer matrix + output matrix + norms
  // (+ one embedding row).
  uint64_t decode_weight_bytes() const;
  // Type of the bulk of the weights (the FFN matrices), for reports.
  DType main_weight_type() const {
    const LayerWeights& l = weights_.layers.back();
    return config_.moe.is_moe_layer(config_.n_layers - 1) ? l.moe.up.type : l.w_up.type;
  }

 private:
  explicit Model(GgufFile file) : file_(std::move(file)) {}
  GgufFile file_;
  ModelConfig config_;
  ModelWeights weights_;
};

}  // namespace flashmem
