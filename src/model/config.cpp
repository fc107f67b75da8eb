#include "model/config.h"

#include <fmt/format.h>
#include <fmt/ranges.h>

#include <cmath>

#include "util/error.h"

namespace flashmem {
namespace {

// Upper bounds far beyond any real model, so that corrupt metadata cannot drive huge allocations
// (e.g. block_count = 100000) before the tensor table check catches it.
constexpr int64_t kMaxLayers = 1024;
constexpr int64_t kMaxDim = 1 << 16;
constexpr int64_t kMaxHeads = 1024;
constexpr int64_t kMaxFf = 1 << 18;
constexpr int64_t kMaxVocab = 1 << 22;

int64_t get_bounded(const GgufFile& file, const std::string& key, int64_t lo, int64_t hi) {
  int64_t v = file.get_int(key);
  if (v < lo || v > hi) fail("{}: {} = {} is out of range [{}, {}]", file.name(), key, v, lo, hi);
  return v;
}

double get_positive(const GgufFile& file, const std::string& key, double fallback) {
  const double v = file.get_float_opt(key).value_or(fallback);
  if (!(v >= 0.0 && v < 1e6)) fail("{}: {} = {} is out of range", file.name(), key, v);
  return v;
}

// Query scale, soft-capping caps, embedding scale and the per-layer sliding windows: what the
// arch's spec says, with the values its GGUF keys give.
void read_attention_variants(const GgufFile& file, const std::string& p, ModelConfig& c) {
  const ArchSpec& a = *c.arch;
  const bool embd_per_head = a.embd_per_head_scale_layers == c.n_layers;
  c.attn_scale = 1.0 / std::sqrt(static_cast<double>(embd_per_head ? c.dim / c.n_heads : c.head_dim));
  c.attn_softcap = a.default_attn_softcap > 0
                       ? get_positive(file, p + "attn_logit_softcapping", a.default_attn_softcap)
                       : 0.0;
  c.final_softcap = a.default_final_softcap > 0
                        ? get_positive(file, p + "final_logit_softcapping", a.default_final_softcap)
                        : 0.0;
  c.embd_scale = a.scale_embeddings ? std::sqrt(static_cast<float>(c.dim)) : 1.0f;
  if (const auto swa_base = file.get_float_opt(p + "rope.freq_base_swa");
      swa_base && *swa_base != c.rope_base)
    fail("{}: rope.freq_base_swa = {} differs from rope.freq_base = {} (not supported)",
         file.name(), *swa_base, c.rope_base);
  c.layer_window.assign(static_cast<size_t>(c.n_layers), 0);
  const std::string window_key = p + "attention.sliding_window";
  switch (a.window_layers) {
    case WindowLayers::kNone:
      break;
    case WindowLayers::kAll:
      if (file.has(window_key))
        c.layer_window.assign(static_cast<size_t>(c.n_layers),
                              get_bounded(file, window_key, 0, int64_t{1} << 32));
      break;
    case WindowLayers::kPattern: {
      const int64_t window = file.has(window_key)
                                 ? get_bounded(file, window_key, 1, int64_t{1} << 32)
                                 : a.default_window;
      const std::string period_key = p + "attention.sliding_window_pattern";
      const int64_t period = file.has(period_key) ? get_bounded(file, period_key, 0, kMaxLayers)
                                                  : a.default_window_period;
      // llama.cpp's set_swa_pattern: period 0 = every layer windowed.
      for (int64_t il = 0; il < c.n_layers; ++il)
        if (period == 0 || il % period < period - 1) c.layer_window[static_cast<size_t>(il)] = window;
      break;
    }
  }
}

}  // namespace

ModelConfig read_model_config(const GgufFile& file) {
  ModelConfig c;
  const std::string arch = file.get_string("general.architecture");
  c.arch = find_arch(arch);
  if (c.arch == nullptr)
    fail("{}: architecture '{}' is not supported (supported: {})", file.name(), arch,
         fmt::join(supported_arch_names(), ", "));
  const std::string p = arch + ".";

  c.dim = get_bounded(file, p + "embedding_length", 1, kMaxDim);
  c.n_layers = get_bounded(file, p + "block_count", 1, kMaxLayers);
  c.ff_dim = get_bounded(file, p + "feed_forward_length", 1, kMaxFf);
  c.n_heads = get_bounded(file, p + "attention.head_count", 1, kMaxHeads);
  c.n_kv_heads = file.has(p + "attention.head_count_kv")
                     ? get_bounded(file, p + "attention.head_count_kv", 1, kMaxHeads)
                     : c.n_heads;
  if (c.n_heads % c.n_kv_heads != 0)
    fail("{}: attention.head_count_kv = {} does not divide head_count = {}", file.name(),
         c.n_kv_heads, c.n_heads);
  if (c.dim % c.n_heads != 0 && !file.has(p + "attention.key_length"))
    fail("{}: embedding_length = {} is not a multiple of head_count = {}", file.name(), c.dim,
         c.n_heads);
  c.head_dim = file.has(p + "attention.key_length")
                   ? get_bounded(file, p + "attention.key_length", 2, kMaxDim)
                   : c.dim / c.n_heads;
  if (!c.arch->latent_moe && file.has(p + "attention.value_length") &&
      file.get_int(p + "attention.value_length") != c.head_dim)
    fail("{}: attention.value_length = {} differs from key_length = {} (not supported)",
         file.name(), file.get_int(p + "attention.value_length"), c.head_dim);
  if (c.head_dim % 2 != 0) fail("{}: head dimension {} is odd", file.name(), c.head_dim);
  c.context_length = file.has(p + "context_length")
                         ? get_bounded(file, p + "context_length", 1, int64_t{1} << 32)
                         : 4096;
  c.rope_dim = file.has(p + "rope.dimension_count")
                   ? get_bounded(file, p + "rope.dimension_count", 2, c.head_dim)
                   : c.head_dim;
  if (c.rope_dim % 2 != 0) fail("{}: rope.dimension_count = {} is odd", file.name(), c.rope_dim);
  c.rope_base = file.get_float_opt(p + "rope.freq_base").value_or(c.arch->default_rope_base);
  if (!(c.rope_base > 1.0 && c.rope_base < 1e12))
    fail("{}: rope.freq_base = {} is out of range", file.name(), c.rope_base);
  c.rms_eps = file.get_float_opt(p + "attention.layer_norm_rms_epsilon")
                  .value_or(c.arch->default_rms_eps);
  if (!(c.rms_eps > 0.0 && c.rms_eps < 1.0))
    fail("{}: attention.layer_norm_rms_epsilon = {} is out of range", file.name(), c.rms_eps);
  read_attention_variants(file, p, c);
  c.v_dim = c.head_dim;
  if (c.arch->latent_moe) read_latent_moe_config(file, p, c);

  // Vocabulary size: the embedding table is authoritative (the tokenizer may be absent).
  const GgufTensor* embd = file.find_tensor("token_embd.weight");
  if (embd == nullptr) fail("{}: tensor 'token_embd.weight' is missing", file.name());
  c.n_vocab = embd->ne[1];
  if (c.n_vocab < 1 || c.n_vocab > kMaxVocab)
    fail("{}: vocabulary size {} is out of range", file.name(), c.n_vocab);
  return c;
}

}  // namespace flashmem
