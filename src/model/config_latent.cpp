// deepseek2 hyper-parameters: multi-head latent attention, mixture of experts, YaRN — the keys
// and rules llama.cpp (81ff7abe) reads for this arch (src/models/deepseek2.cpp,
// llama-context.cpp's YaRN attention factor).
#include <fmt/format.h>

#include <cmath>

#include "model/config.h"
#include "util/error.h"

namespace flashmem {
namespace {

// Bounds far beyond any real model (DeepSeek-V3: kv_lora 512, q_lora 1536, 256 experts, 8 used,
// expert ff 2048), so corrupt metadata cannot size huge buffers.
constexpr int64_t kMaxRank = 1 << 16;
constexpr int64_t kMaxExperts = 1 << 12;
constexpr int64_t kMaxFf = 1 << 18;

// llama.cpp's get_mscale: YaRN's magnitude correction 1 + 0.1 · m · ln(s) for scale s > 1.
double yarn_mscale(double s, double m) { return s <= 1.0 ? 1.0 : 1.0 + 0.1 * m * std::log(s); }

// rope.scaling.* and the query scale. llama.cpp (llama-context.cpp, deepseek2.cpp) with factor f
// and log multiplier L (the file's yarn_log_multiplier / 0.1, undoing the converter's 0.1):
//   A        = (L != 0 ? 1 : mscale(f, 1)) / (1 + 0.1 ln f) · rope.scaling.attn_factor
//              (for deepseek2 with L != 0, llama.cpp's mscale / mscale_all_dim ratio is 1)
//   RoPE cos/sin are multiplied by A · (1 + 0.1 ln f) (ggml's rope_yarn)
//   kq_scale = m² / √key_length_mla,  m = A · (1 + 0.1 ln f) · (1 + 0.1 L ln f)
// Without YaRN, f = 1: cos/sin and m are rope.scaling.attn_factor (1 when absent).
void read_rope_scaling(const GgufFile& file, const std::string& p, int64_t key_length_mla,
                       ModelConfig& c) {
  const std::string type = file.get_string_opt(p + "rope.scaling.type").value_or("none");
  const double factor = file.get_float_opt(p + "rope.scaling.factor").value_or(0.0);
  const double attn_factor = file.get_float_opt(p + "rope.scaling.attn_factor").value_or(1.0);
  if (!(attn_factor > 0.0 && attn_factor < 1e3))
    fail("{}: rope.scaling.attn_factor = {} is out of range", file.name(), attn_factor);
  double f = 1.0, log_mul = 0.0;
  if (type == "yarn") {
    if (!(factor >= 1.0 && factor < 1e6))
      fail("{}: rope.scaling.factor = {} is out of range [1, 1e6) for yarn", file.name(), factor);
    f = factor;
    c.yarn.factor = factor;
    c.yarn.orig_ctx = file.has(p + "rope.scaling.original_context_length")
                          ? file.get_int_in(p + "rope.scaling.original_context_length", 1, int64_t{1} << 32)
                          : c.context_length;
    // The converter writes 0.1 · mscale_all_dim; llama.cpp divides by 0.1.
    log_mul = file.get_float_opt(p + "rope.scaling.yarn_log_multiplier").value_or(0.0) / 0.1;
    if (!(std::abs(log_mul) < 1e3))
      fail("{}: rope.scaling.yarn_log_multiplier is out of range", file.name());
  } else if (type != "none" && !(type == "linear" && (factor == 0.0 || factor == 1.0))) {
    // llama.cpp's default type is linear: a file without the key but with a factor scales linearly.
    fail("{}: rope.scaling.type = '{}' (factor {}) is not supported for deepseek2 (none or yarn)",
         file.name(), type, factor);
  }
  const double ln_f = std::log(f);
  const double a = (log_mul != 0.0 ? 1.0 : yarn_mscale(f, 1.0)) / (1.0 + 0.1 * ln_f) * attn_factor;
  const double magnitude = a * (1.0 + 0.1 * ln_f);
  c.yarn.magnitude = static_cast<float>(magnitude);
  const double m = magnitude * (1.0 + 0.1 * log_mul * ln_f);
  c.attn_scale = m * m / std::sqrt(static_cast<double>(key_length_mla));
}

void read_experts(const GgufFile& file, const std::string& p, ModelConfig& c) {
  MixtureOfExperts& e = c.moe;
  e.n_dense_lead = file.has(p + "leading_dense_block_count")
                       ? file.get_int_in(p + "leading_dense_block_count", 0, c.n_layers)
                       : 0;
  if (e.n_dense_lead == c.n_layers) return;  // no MoE layer: the expert keys are not needed
  e.n_experts = file.get_int_in(p + "expert_count", 1, kMaxExperts);
  e.n_used = file.get_int_in(p + "expert_used_count", 1, e.n_experts);
  e.n_shared = file.get_int_in(p + "expert_shared_count", 0, kMaxExperts);
  e.expert_ff = file.get_int_in(p + "expert_feed_forward_length", 1, kMaxFf);
  if (file.has(p + "expert_group_count") && file.get_int(p + "expert_group_count") > 1)
    fail("{}: expert_group_count = {} (group-limited routing) is not supported", file.name(),
         file.get_int(p + "expert_group_count"));
  const int64_t gating = file.has(p + "expert_gating_func")
                             ? file.get_int(p + "expert_gating_func")
                             : 1;  // llama.cpp: softmax when absent (DeepSeek V2 / V2.5 files)
  if (gating != 1 && gating != 2)
    fail("{}: expert_gating_func = {} is not supported (1 softmax, 2 sigmoid)", file.name(), gating);
  e.gating = gating == 1 ? ExpertGating::kSoftmax : ExpertGating::kSigmoid;
  e.normalize = file.get_bool_opt(p + "expert_weights_norm").value_or(false);
  const double scale = file.get_float_opt(p + "expert_weights_scale").value_or(0.0);
  if (!(scale >= 0.0 && scale < 1e3))
    fail("{}: expert_weights_scale = {} is out of range", file.name(), scale);
  e.scale = scale == 0.0 ? 1.0f : static_cast<float>(scale);  // llama.cpp skips 0 and 1
}

}  // namespace

void read_latent_moe_config(const GgufFile& file, const std::string& p, ModelConfig& c) {
  LatentAttention& a = c.mla;
  a.kv_lora = file.get_int_in(p + "attention.kv_lora_rank", 1, kMaxRank);
  a.q_lora = file.has(p + "attention.q_lora_rank")
                 ? file.get_int_in(p + "attention.q_lora_rank", 0, kMaxRank)
                 : 0;
  if (!file.has(p + "attention.key_length_mla") || !file.has(p + "attention.value_length_mla"))
    fail("{}: deepseek2 file without attention.key_length_mla / value_length_mla (the legacy "
         "attn_kv_b form) is not supported: convert it again with a current llama.cpp",
         file.name());
  const int64_t k_mla = file.get_int_in(p + "attention.key_length_mla", 2, kMaxRank);
  a.v_head_dim = file.get_int_in(p + "attention.value_length_mla", 1, kMaxRank);
  a.nope_dim = k_mla - c.rope_dim;
  if (a.nope_dim < 1)
    fail("{}: attention.key_length_mla = {} leaves no dims beside rope.dimension_count = {}",
         file.name(), k_mla, c.rope_dim);
  // The cache row: key_length = kv_lora + rope dims, value_length = kv_lora (the converter's).
  const int64_t value_length = file.get_int_opt(p + "attention.value_length").value_or(a.kv_lora);
  if (c.head_dim != a.kv_lora + c.rope_dim || value_length != a.kv_lora)
    fail("{}: attention.key_length = {} / value_length = {} differ from kv_lora_rank + "
         "rope.dimension_count = {} / kv_lora_rank = {}",
         file.name(), c.head_dim, value_length, a.kv_lora + c.rope_dim, a.kv_lora);
  if (file.has(p + "attention.temperature_scale"))
    fail("{}: attention.temperature_scale (query temperature tuning) is not supported", file.name());
  c.n_kv_heads = 1;
  c.v_dim = a.kv_lora;
  c.values_in_keys = true;
  read_rope_scaling(file, p, k_mla, c);
  read_experts(file, p, c);
}

}  // namespace flashmem
