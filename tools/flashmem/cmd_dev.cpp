// `flashmem dev make-random-model`: random-weight GGUF models for tests and benchmarks.
#include <fmt/format.h>

#include "commands.h"
#include "model/random_model.h"
#include "util/error.h"

namespace flashmem::cli {
namespace {

const CommandRegistration kDev("dev", [](CLI::App& app) {
  auto* dev = app.add_subcommand("dev", "Developer tools");
  dev->require_subcommand(1);
  auto* cmd = dev->add_subcommand("make-random-model", "Write a random-weight GGUF model");
  auto spec = std::make_shared<RandomModelSpec>();
  auto type = std::make_shared<std::string>("f32");
  auto out = std::make_shared<std::string>();
  cmd->add_option("--arch", spec->arch, "llama | mistral | qwen2 | qwen3 | phi3 | gemma2 | deepseek2")->capture_default_str();
  cmd->add_option("--dim", spec->dim, "embedding width")->capture_default_str();
  cmd->add_option("--layers", spec->n_layers, "number of blocks")->capture_default_str();
  cmd->add_option("--heads", spec->n_heads, "attention heads")->capture_default_str();
  cmd->add_option("--kv-heads", spec->n_kv_heads, "KV heads (GQA)")->capture_default_str();
  cmd->add_option("--head-dim", spec->head_dim, "head dimension (0: dim / heads)")->capture_default_str();
  cmd->add_option("--rope-dim", spec->rope_dim, "rotated dims per head (0: all)")->capture_default_str();
  cmd->add_option("--ff", spec->ff_dim, "feed-forward width")->capture_default_str();
  cmd->add_option("--vocab", spec->n_vocab, "vocabulary size (>= 259)")->capture_default_str();
  cmd->add_option("--context", spec->context_length, "trained context length")->capture_default_str();
  cmd->add_option("--type", *type, "f32 | f16 | bf16 | q8_0 | q4_0 | q4_1 | q5_0 | q5_1 | q2_K .. q6_K | iq4_nl")->capture_default_str();
  cmd->add_flag("--tied", spec->tied_output, "tie the output matrix to the embedding");
  cmd->add_flag("--rope-freq-factors", spec->rope_freq_factors,
                "write rope_freqs.weight (Llama 3.1-style RoPE frequency divisors, random in [1, 8])");
  cmd->add_option("--window", spec->window, "sliding window in positions (0: none)")->capture_default_str();
  cmd->add_option("--window-period", spec->window_period,
                  "gemma2: every period-th layer attends globally (0: arch default)")->capture_default_str();
  cmd->add_option("--attn-softcap", spec->attn_softcap, "attention logit soft-cap (0: arch default)")->capture_default_str();
  cmd->add_option("--final-softcap", spec->final_softcap, "final logit soft-cap (0: arch default)")->capture_default_str();
  cmd->add_option("--seed", spec->seed, "random seed")->capture_default_str();
  // deepseek2 (latent attention, experts, YaRN); refused for other archs.
  RandomModelSpec::Deepseek2& d = spec->deepseek2;
  cmd->add_option("--q-lora", d.q_lora, "deepseek2: q_lora_rank (0: attn_q)")->capture_default_str();
  cmd->add_option("--kv-lora", d.kv_lora, "deepseek2: kv_lora_rank (latent width)")->capture_default_str();
  cmd->add_option("--nope-dim", d.nope_dim, "deepseek2: per-head q/k dims without rope")->capture_default_str();
  cmd->add_option("--v-head-dim", d.v_head_dim, "deepseek2: per-head value dims")->capture_default_str();
  cmd->add_option("--dense-layers", d.dense_layers, "deepseek2: leading dense FFN layers")->capture_default_str();
  cmd->add_option("--experts", d.experts, "deepseek2: routed experts")->capture_default_str();
  cmd->add_option("--experts-used", d.experts_used, "deepseek2: experts per token")->capture_default_str();
  cmd->add_option("--shared-experts", d.shared_experts, "deepseek2: shared experts")->capture_default_str();
  cmd->add_option("--expert-ff", d.expert_ff, "deepseek2: expert feed-forward width")->capture_default_str();
  cmd->add_option("--gating", d.gating, "deepseek2: expert gating func, 1 softmax | 2 sigmoid")->capture_default_str();
  cmd->add_flag("--expert-bias", d.expert_bias, "deepseek2: write exp_probs_b.bias (selection bias)");
  cmd->add_flag("--norm-expert-weights", d.norm_weights, "deepseek2: expert_weights_norm = true");
  cmd->add_option("--expert-weights-scale", d.weights_scale, "deepseek2: expert_weights_scale (0: not written)")->capture_default_str();
  cmd->add_option("--yarn-factor", d.yarn_factor, "deepseek2: rope.scaling.type yarn with this factor (0: none)")->capture_default_str();
  cmd->add_option("--yarn-orig-ctx", d.yarn_orig_ctx, "deepseek2: yarn original context length (0: not written)")->capture_default_str();
  cmd->add_option("--yarn-mscale-all-dim", d.yarn_mscale_all_dim,
                  "deepseek2: yarn mscale_all_dim, written as yarn_log_multiplier = 0.1 x this (0: not written)")->capture_default_str();
  cmd->add_option("--out", *out, "output .gguf")->required();
  cmd->callback([spec, type, out] {
    auto t = dtype_from_name(*type);
    if (!t) fail("unknown weight type '{}'", *type);
    spec->type = *t;
    write_random_model(*spec, *out);
    fmt::print("wrote {}\n", *out);
  });
});

}  // namespace
}  // namespace flashmem::cli
