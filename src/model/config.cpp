#include "model/config.h"

#include <fmt/format.h>
#include <fmt/ranges.h>

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
  if (c.dim % c.n_heads != 0)
    fail("{}: embedding_length = {} is not a multiple of head_count = {}", file.name(), c.dim,
         c.n_heads);
  c.head_dim = c.dim / c.n_heads;
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

  // Vocabulary size: the embedding table is authoritative (the tokenizer may be absent).
  const GgufTensor* embd = file.find_tensor("token_embd.weight");
  if (embd == nullptr) fail("{}: tensor 'token_embd.weight' is missing", file.name());
  c.n_vocab = embd->ne[1];
  if (c.n_vocab < 1 || c.n_vocab > kMaxVocab)
    fail("{}: vocabulary size {} is out of range", file.name(), c.n_vocab);
  return c;
}

}  // namespace flashmem
