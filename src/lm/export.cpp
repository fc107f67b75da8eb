#include "lm/export.h"

#include "gguf/gguf.h"
#include "tensor/kernels.h"
#include "util/error.h"

namespace flashmem::lm {

void export_gguf(const LmConfig& c, const ParamLayout& layout, const std::vector<float>& params,
                 const VocabSpec& vocab, DType type, const std::string& name,
                 const std::string& path) {
  if (type != DType::F32 && type != DType::F16) fail("export: weight type must be f32 or f16");
  if (params.size() != layout.total) fail("export: {} parameters, layout needs {}", params.size(), layout.total);
  if (static_cast<int64_t>(vocab.tokens.size()) != c.n_vocab)
    fail("export: vocabulary has {} tokens, model {}", vocab.tokens.size(), c.n_vocab);
  GgufWriter w;
  w.set_string("general.architecture", "llama");
  w.set_string("general.name", name);
  w.set_u32("general.file_type", *gguf_file_type(type));  // f32 or f16, checked above
  w.set_u32("llama.context_length", static_cast<uint32_t>(c.context_length));
  w.set_u32("llama.embedding_length", static_cast<uint32_t>(c.dim));
  w.set_u32("llama.block_count", static_cast<uint32_t>(c.n_layers));
  w.set_u32("llama.feed_forward_length", static_cast<uint32_t>(c.ff_dim));
  w.set_u32("llama.attention.head_count", static_cast<uint32_t>(c.n_heads));
  w.set_u32("llama.attention.head_count_kv", static_cast<uint32_t>(c.n_kv_heads));
  w.set_u32("llama.rope.dimension_count", static_cast<uint32_t>(c.head_dim()));
  w.set_f32("llama.rope.freq_base", static_cast<float>(c.rope_base));
  w.set_f32("llama.attention.layer_norm_rms_epsilon", static_cast<float>(c.rms_eps));
  w.set_u32("llama.vocab_size", static_cast<uint32_t>(c.n_vocab));

  w.set_string("tokenizer.ggml.model", vocab.model == TokenizerModel::kSpm ? "llama" : "gpt2");
  w.set_string_array("tokenizer.ggml.tokens", vocab.tokens);
  if (!vocab.scores.empty()) w.set_f32_array("tokenizer.ggml.scores", vocab.scores);
  if (!vocab.token_types.empty()) w.set_i32_array("tokenizer.ggml.token_type", vocab.token_types);
  if (vocab.bos_id) w.set_u32("tokenizer.ggml.bos_token_id", static_cast<uint32_t>(*vocab.bos_id));
  if (vocab.eos_id) w.set_u32("tokenizer.ggml.eos_token_id", static_cast<uint32_t>(*vocab.eos_id));
  if (vocab.unk_id) w.set_u32("tokenizer.ggml.unknown_token_id", static_cast<uint32_t>(*vocab.unk_id));

  for (const ParamTensor& t : param_tensors(c, layout)) {
    const float* src = params.data() + t.offset;
    if (t.rows == 1 || type == DType::F32) {  // norms always f32, as the engine expects
      const std::vector<int64_t> shape = t.rows == 1 ? std::vector<int64_t>{t.cols}
                                                     : std::vector<int64_t>{t.cols, t.rows};
      w.add_tensor(t.name, DType::F32, shape, src, static_cast<size_t>(t.rows * t.cols) * sizeof(float));
      continue;
    }
    std::vector<uint8_t> data(row_bytes(type, t.cols) * static_cast<size_t>(t.rows));  // [rows, cols]
    for (int64_t r = 0; r < t.rows; ++r)
      quantize_row(type, src + r * t.cols, data.data() + row_bytes(type, t.cols) * r, t.cols);
    w.add_tensor(t.name, type, {t.cols, t.rows}, data.data(), data.size());
  }
  w.write(path);
}

}  // namespace flashmem::lm
