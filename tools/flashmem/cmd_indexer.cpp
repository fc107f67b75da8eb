// `flashmem indexer convert | score | make-random`: the Memory Indexer's file tools and a
// scoring front end over the library (src/indexer/).
#include <fmt/format.h>

#include <charconv>
#include <span>

#include "commands.h"
#include "common.h"
#include "indexer/convert_reference.h"
#include "indexer/indexer_model.h"
#include "indexer/scoring.h"
#include "indexer/towers.h"
#include "util/error.h"
#include "util/raw_array.h"
#include "util/thread_pool.h"

namespace flashmem::cli {
namespace {

DType parse_weight_type(const std::string& name) {
  if (name == "f32") return DType::F32;
  if (name == "bf16") return DType::BF16;
  if (name == "f16") return DType::F16;
  fail("--type must be f32, bf16 or f16, not '{}'", name);
}

void setup_convert(CLI::App& parent) {
  auto* cmd = parent.add_subcommand("convert", "Convert a reference checkpoint (safetensors)");
  auto in = std::make_shared<std::string>();
  auto out = std::make_shared<std::string>();
  auto options = std::make_shared<ConvertOptions>();
  cmd->add_option("input", *in, "reference checkpoint, .safetensors")->required();
  cmd->add_option("--out", *out, "output indexer .gguf")->required();
  cmd->add_option("--chunk-tokens", options->chunk_tokens, "tokens per index chunk")
      ->capture_default_str();
  cmd->callback([in, out, options] {
    const ConvertResult result = convert_reference_file(*in, *out, *options);
    for (const std::string& name : result.ignored)
      fmt::print(stderr, "note: ignored tensor '{}'\n", name);
    const IndexerConfig& c = result.weights.config;
    fmt::print(stderr, "wrote {}: {} layers, D {}, R {}, H {}, key_source {}\n", *out,
               c.layers.size(), c.hidden_dim, c.q_lora_rank, c.n_heads, c.key_source);
  });
}

struct ScoreArgs {
  std::string indexer, hidden, keys, out, ensemble;
  int64_t pos = -1;
  int32_t layer = -1;
  bool logits = false, keys_per_layer = false;
  int threads = 0;
};

void run_score(const ScoreArgs& a, bool has_layer) {
  if (has_layer && !a.ensemble.empty()) fail("give --layer or --ensemble, not both");
  if (!has_layer && a.logits) fail("--logits needs --layer (ensembles combine sigmoid scores)");
  if (a.pos < 0) fail("--pos must be >= 0, got {}", a.pos);
  const EnsembleMode mode = parse_ensemble_mode(a.ensemble.empty() ? "max" : a.ensemble);
  const IndexerModel model = IndexerModel::load(a.indexer);
  const IndexerConfig& c = model.config();
  const std::vector<int32_t> ids = has_layer ? std::vector<int32_t>{a.layer} : c.layers;
  if (has_layer) model.layer(a.layer);  // validates the id

  const std::vector<float> hidden = read_f32_file(a.hidden);
  const size_t dim = static_cast<size_t>(c.hidden_dim), n_file_layers = c.layers.size();
  const bool hidden_per_layer = hidden.size() == n_file_layers * dim && n_file_layers > 1;
  if (hidden.size() != dim && !hidden_per_layer)
    fail("'{}' holds {} floats; expected {} (one hidden state) or {} (one per target layer)",
         a.hidden, hidden.size(), dim, n_file_layers * dim);

  const std::vector<uint8_t> keys = read_u8_file(a.keys);
  const size_t key_blocks = a.keys_per_layer ? n_file_layers : 1;
  const size_t block_bytes = key_blocks * kCompressedKeyBytes;
  if (keys.size() % block_bytes != 0)
    fail("'{}' holds {} bytes, not a multiple of {} ({} × {}-byte keys)", a.keys, keys.size(),
         block_bytes, key_blocks, kCompressedKeyBytes);
  const int64_t n_keys = static_cast<int64_t>(keys.size() / block_bytes);

  std::vector<LayerInputs> inputs;
  for (int32_t id : ids) {
    const size_t slot = static_cast<size_t>(
        std::find(c.layers.begin(), c.layers.end(), id) - c.layers.begin());
    LayerInputs in;
    in.layer_id = id;
    in.hidden = hidden.data() + (hidden_per_layer ? slot * dim : 0);
    in.keys = keys.data() + (a.keys_per_layer ? slot * n_keys * kCompressedKeyBytes : 0);
    inputs.push_back(in);
  }
  ThreadPool pool(a.threads > 0 ? a.threads : ThreadPool::default_threads());
  std::vector<std::vector<float>> logits = score_layers(model, inputs, n_keys, a.pos, &pool);

  std::vector<float> out(static_cast<size_t>(n_keys));  // [n_keys]
  if (has_layer) {
    out = std::move(logits[0]);
    if (!a.logits) logits_to_scores(out.data(), out.data(), n_keys);
  } else {
    std::vector<std::span<const float>> spans(logits.begin(), logits.end());
    ensemble_scores(spans, mode, out.data(), n_keys);
  }
  write_f32_file(a.out, out);
  int64_t selected = 0;
  if (!a.logits)
    for (float s : out) selected += s > kSelectThreshold;
  fmt::print(stderr, "scored {} chunks over {} layer(s){}\n", n_keys, ids.size(),
             a.logits ? std::string() : fmt::format("; {} above {}", selected, kSelectThreshold));
}

void setup_score(CLI::App& parent) {
  auto* cmd = parent.add_subcommand("score", "Score compressed keys for one decode token");
  auto a = std::make_shared<ScoreArgs>();
  cmd->add_option("--indexer", a->indexer, "indexer .gguf")->required();
  cmd->add_option("--hidden", a->hidden,
                  "hidden state, raw f32 [D] (all layers) or [n_layers, D] (file layer order)")
      ->required();
  cmd->add_option("--keys", a->keys, "compressed keys, raw [N, 132] bytes")->required();
  cmd->add_option("--pos", a->pos, "position of the decode token")->required();
  cmd->add_option("--out", a->out, "output, raw f32 [N]")->required();
  auto* layer = cmd->add_option("--layer", a->layer, "score one target layer (backbone id)");
  cmd->add_option("--ensemble", a->ensemble, "max | mean over all target layers (default max)");
  cmd->add_flag("--logits", a->logits, "with --layer: write logits instead of sigmoid scores");
  cmd->add_flag("--keys-per-layer", a->keys_per_layer,
                "--keys holds [n_layers, N, 132] (file layer order) instead of shared keys");
  add_threads_option(cmd, a->threads);
  cmd->callback([a, layer] { run_score(*a, layer->count() > 0); });
}

void setup_make_random(CLI::App& parent) {
  auto* cmd = parent.add_subcommand("make-random", "Write a random-weight indexer");
  auto spec = std::make_shared<RandomIndexerSpec>();
  auto layers = std::make_shared<std::string>("10,12,20");
  auto type = std::make_shared<std::string>("f32");
  auto seed = std::make_shared<uint64_t>(1);
  auto no_wk = std::make_shared<bool>(false);
  auto out = std::make_shared<std::string>();
  cmd->add_option("--layers", *layers, "target layer ids, comma-separated")->capture_default_str();
  cmd->add_option("--dim", spec->hidden_dim, "hidden dim D")->capture_default_str();
  cmd->add_option("--rank", spec->q_lora_rank, "query low rank R")->capture_default_str();
  cmd->add_option("--heads", spec->n_heads, "indexer heads H")->capture_default_str();
  cmd->add_option("--type", *type, "f32 | bf16 | f16")->capture_default_str();
  cmd->add_flag("--no-wk", *no_wk, "no key tower (key_source backbone)");
  cmd->add_option("--seed", *seed, "random seed")->capture_default_str();
  cmd->add_option("--out", *out, "output .gguf")->required();
  cmd->callback([spec, layers, type, seed, no_wk, out] {
    spec->layers = parse_layer_list(*layers);
    spec->type = parse_weight_type(*type);
    spec->with_wk = !*no_wk;
    write_indexer(*out, random_indexer_weights(*spec, *seed));
    fmt::print(stderr, "wrote {}\n", *out);
  });
}

const CommandRegistration kIndexer("indexer", [](CLI::App& app) {
  auto* indexer = app.add_subcommand("indexer", "Memory Indexer tools");
  indexer->require_subcommand(1);
  setup_convert(*indexer);
  setup_score(*indexer);
  setup_make_random(*indexer);
});

}  // namespace
}  // namespace flashmem::cli
