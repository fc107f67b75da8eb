#include "model/random_model.h"

#include <fmt/format.h>

#include <cmath>
#include <random>
#include <vector>

#include "gguf/gguf.h"
#include "model/arch.h"
#include "model/random_generator.h"
#include "model/random_model_deepseek2.h"
#include "tensor/kernels.h"
#include "util/error.h"

namespace flashmem {
namespace {

constexpr int64_t kSpecialTokens = 3;  // <unk>, <s>, </s>
constexpr int64_t kByteTokens = 256;

void validate(const RandomModelSpec& s) {
  const ArchSpec* arch = find_arch(s.arch);
  if (arch == nullptr) fail("unknown architecture '{}'", s.arch);
  if (s.n_heads < 1) fail("model dimensions must be positive");
  if (s.dim < 2 || s.n_layers < 1 || s.n_heads < 1 || s.n_kv_heads < 1 || s.ff_dim < 1)
    fail("model dimensions must be positive");
  if (s.head_dim == 0 && (s.dim % s.n_heads != 0 || (s.dim / s.n_heads) % 2 != 0))
    fail("dim {} must be a multiple of 2 * heads ({})", s.dim, s.n_heads);
  if (s.head_dim < 0 || s.head_dim % 2 != 0) fail("head-dim {} must be even and positive", s.head_dim);
  const int64_t head_dim = s.head_dim > 0 ? s.head_dim : s.dim / s.n_heads;
  if (s.rope_dim < 0 || s.rope_dim % 2 != 0 || s.rope_dim > head_dim)
    fail("rope-dim {} must be even and at most the head dimension {}", s.rope_dim, head_dim);
  if (s.window < 0 || s.window_period < 0 || s.attn_softcap < 0 || s.final_softcap < 0)
    fail("window, window period and soft-caps must not be negative");
  if (s.window > 0 && arch->window_layers == WindowLayers::kNone)
    fail("architecture '{}' has no sliding window", s.arch);
  if (s.window_period > 0 && arch->window_layers != WindowLayers::kPattern)
    fail("architecture '{}' has no sliding-window layer pattern", s.arch);
  if ((s.attn_softcap > 0 && arch->default_attn_softcap == 0) ||
      (s.final_softcap > 0 && arch->default_final_softcap == 0))
    fail("architecture '{}' has no soft-capping", s.arch);
  if (arch->always_tied && !s.tied_output) fail("architecture '{}' always ties its output (--tied)", s.arch);
  if (s.n_heads % s.n_kv_heads != 0) fail("kv-heads {} must divide heads {}", s.n_kv_heads, s.n_heads);
  if (s.n_vocab < kSpecialTokens + kByteTokens)
    fail("vocab must be at least {}", kSpecialTokens + kByteTokens);
  const int64_t block = dtype_info(s.type).block_elems;
  if (s.dim % block != 0 || s.ff_dim % block != 0)
    fail("dim and ff must be multiples of {} for {}", block, dtype_info(s.type).name);
  if (s.type == DType::I8 || s.type == DType::I16 || s.type == DType::I32)
    fail("weight type {} is not supported", dtype_info(s.type).name);
  validate_deepseek2_spec(s);
}

// llama.cpp looks up Phi-3's end-of-text token in every file whose general.name contains "phi3"
// (it sets the token's attributes) and refuses the vocabulary without it: such files get it as
// their last token.
void write_vocab(GgufWriter& w, int64_t n_vocab, const std::string& model_name) {
  const bool phi3_name = model_name.find("phi3") != std::string::npos;
  if (phi3_name && n_vocab < kSpecialTokens + kByteTokens + 1)
    fail("vocab must be at least {} for phi3 (<|endoftext|>)", kSpecialTokens + kByteTokens + 1);
  std::vector<std::string> tokens = {"<unk>", "<s>", "</s>"};
  std::vector<int32_t> types = {2, 3, 3};  // unknown, control, control
  for (int b = 0; b < kByteTokens; ++b) {
    tokens.push_back(fmt::format("<0x{:02X}>", b));
    types.push_back(6);  // byte
  }
  for (int64_t i = static_cast<int64_t>(tokens.size()); i < n_vocab - (phi3_name ? 1 : 0); ++i) {
    tokens.push_back(fmt::format("\u2581tok{}", i));
    types.push_back(1);  // normal
  }
  if (phi3_name) {
    tokens.push_back("<|endoftext|>");
    types.push_back(3);  // control
  }
  w.set_string("tokenizer.ggml.model", "llama");
  w.set_string_array("tokenizer.ggml.tokens", tokens);
  w.set_f32_array("tokenizer.ggml.scores", std::vector<float>(tokens.size(), 0.0f));
  w.set_i32_array("tokenizer.ggml.token_type", types);
  w.set_u32("tokenizer.ggml.bos_token_id", 1);
  w.set_u32("tokenizer.ggml.eos_token_id", 2);
  w.set_u32("tokenizer.ggml.unknown_token_id", 0);
}

}  // namespace

void write_random_model(const RandomModelSpec& s, const std::string& path) {
  validate(s);
  const ArchSpec& arch = *find_arch(s.arch);
  GgufWriter w;
  const std::string p = s.arch + ".";
  const int64_t head_dim = s.head_dim > 0 ? s.head_dim : s.dim / s.n_heads;
  w.set_string("general.architecture", s.arch);
  const std::string model_name = fmt::format("random-{}-{}", s.arch, dtype_info(s.type).name);
  w.set_string("general.name", model_name);
  if (const auto file_type = gguf_file_type(s.type)) w.set_u32("general.file_type", *file_type);
  w.set_u32(p + "context_length", static_cast<uint32_t>(s.context_length));
  w.set_u32(p + "embedding_length", static_cast<uint32_t>(s.dim));
  w.set_u32(p + "block_count", static_cast<uint32_t>(s.n_layers));
  w.set_u32(p + "feed_forward_length", static_cast<uint32_t>(s.ff_dim));
  w.set_u32(p + "attention.head_count", static_cast<uint32_t>(s.n_heads));
  w.set_u32(p + "attention.head_count_kv", static_cast<uint32_t>(s.n_kv_heads));
  if (s.head_dim > 0) {
    w.set_u32(p + "attention.key_length", static_cast<uint32_t>(head_dim));
    w.set_u32(p + "attention.value_length", static_cast<uint32_t>(head_dim));
  }
  w.set_u32(p + "rope.dimension_count", static_cast<uint32_t>(s.rope_dim > 0 ? s.rope_dim : head_dim));
  if (s.window > 0) w.set_u32(p + "attention.sliding_window", static_cast<uint32_t>(s.window));
  if (s.window_period > 0)
    w.set_u32(p + "attention.sliding_window_pattern", static_cast<uint32_t>(s.window_period));
  if (s.attn_softcap > 0) w.set_f32(p + "attn_logit_softcapping", static_cast<float>(s.attn_softcap));
  if (s.final_softcap > 0) w.set_f32(p + "final_logit_softcapping", static_cast<float>(s.final_softcap));
  w.set_f32(p + "rope.freq_base", static_cast<float>(arch.default_rope_base));
  w.set_f32(p + "attention.layer_norm_rms_epsilon", static_cast<float>(arch.default_rms_eps));
  write_vocab(w, s.n_vocab, model_name);

  RandomTensorWriter g(w, s.seed);
  if (arch.latent_moe) {
    write_deepseek2_model(s, w, g);
    write_shared_tail(s, g);
    w.write(path);
    return;
  }
  const int64_t q_dim = s.n_heads * head_dim, kv_dim = s.n_kv_heads * head_dim;
  g.matrix("token_embd.weight", s.n_vocab, s.dim, s.type);
  for (int64_t i = 0; i < s.n_layers; ++i) {
    auto name = [i](const char* suffix) { return fmt::format("blk.{}.{}", i, suffix); };
    g.vector(name("attn_norm.weight"), s.dim, 1.0f, 0.1f);
    if (arch.fused_projections) {
      g.matrix(name("attn_qkv.weight"), q_dim + 2 * kv_dim, s.dim, s.type);
    } else {
      g.matrix(name("attn_q.weight"), q_dim, s.dim, s.type);
      g.matrix(name("attn_k.weight"), kv_dim, s.dim, s.type);
      g.matrix(name("attn_v.weight"), kv_dim, s.dim, s.type);
    }
    if (arch.qkv_bias) {
      g.vector(name("attn_q.bias"), q_dim, 0.0f, 0.1f);
      g.vector(name("attn_k.bias"), kv_dim, 0.0f, 0.1f);
      g.vector(name("attn_v.bias"), kv_dim, 0.0f, 0.1f);
    }
    if (arch.qk_norm) {
      g.vector(name("attn_q_norm.weight"), head_dim, 1.0f, 0.1f);
      g.vector(name("attn_k_norm.weight"), head_dim, 1.0f, 0.1f);
    }
    g.matrix(name("attn_output.weight"), s.dim, q_dim, s.type);
    if (arch.post_norms) g.vector(name("post_attention_norm.weight"), s.dim, 1.0f, 0.1f);
    g.vector(name("ffn_norm.weight"), s.dim, 1.0f, 0.1f);
    if (arch.fused_projections) {
      g.matrix(name("ffn_up.weight"), 2 * s.ff_dim, s.dim, s.type);
    } else {
      g.matrix(name("ffn_gate.weight"), s.ff_dim, s.dim, s.type);
      g.matrix(name("ffn_up.weight"), s.ff_dim, s.dim, s.type);
    }
    g.matrix(name("ffn_down.weight"), s.dim, s.ff_dim, s.type);
    if (arch.post_norms) g.vector(name("post_ffw_norm.weight"), s.dim, 1.0f, 0.1f);
  }
  write_shared_tail(s, g);
  w.write(path);
}

void write_shared_tail(const RandomModelSpec& s, RandomTensorWriter& g) {
  g.vector("output_norm.weight", s.dim, 1.0f, 0.1f);
  if (!s.tied_output) g.matrix("output.weight", s.n_vocab, s.dim, s.type);
  const int64_t head_dim = s.head_dim > 0 ? s.head_dim : s.dim / s.n_heads;
  if (s.rope_freq_factors) g.vector("rope_freqs.weight", (s.rope_dim > 0 ? s.rope_dim : head_dim) / 2, 4.5f, 3.5f);
}

}  // namespace flashmem
