// `flashmem logits`: teacher-forced logits for every position of a token-id file.
#include <fmt/format.h>

#include "commands.h"
#include "common.h"
#include "engine/session.h"
#include "util/error.h"
#include "util/raw_array.h"

namespace flashmem::cli {
namespace {

struct LogitsArgs {
  WeightMemory weights = WeightMemory::kMap;  // --weights-memory
  std::string model, tokens, out, kv_type = "f16";
  int threads = 0;
  LsaArgs lsa;
};

const CommandRegistration kLogits("logits", [](CLI::App& app) {
  auto* cmd = app.add_subcommand("logits", "Write float32 [n_tokens, n_vocab] logits for IDS.i32");
  auto a = std::make_shared<LogitsArgs>();
  cmd->add_option("-m,--model", a->model, "GGUF model")->required();
  cmd->add_option("--tokens", a->tokens, "token ids, raw little-endian int32")->required();
  cmd->add_option("--out", a->out, "output logits, raw float32")->required();
  cmd->add_option("--kv-type", a->kv_type, "KV cache type: f16 | f32 | q8_0")->capture_default_str();
  add_threads_option(cmd, a->threads);
  add_weights_memory_option(cmd, a->weights);
  add_lsa_options(cmd, a->lsa);
  cmd->callback([a] {
    auto model = Model::load(a->model, a->weights);
    const std::vector<int32_t> ids = read_i32_file(a->tokens);
    if (ids.empty()) fail("'{}' holds no tokens", a->tokens);
    SessionOptions options;
    options.kv_type = parse_kv_type(a->kv_type);
    // The token file is the explicit context: beyond the trained one it warns, beyond memory it fails.
    const auto n = static_cast<int64_t>(ids.size());
    options.n_ctx = cli_context(
        model->config(), {.prompt_tokens = n, .max_new_tokens = 0, .n_ctx = n, .kv_type = options.kv_type},
        a->lsa.store);
    options.n_threads = a->threads;
    auto session = make_session(model, options, a->lsa);
    std::vector<float> logits(ids.size() * static_cast<size_t>(model->config().n_vocab));
    session->forward(ids, logits.data(), /*all_logits=*/true);
    write_f32_file(a->out, logits);
    fmt::print(stderr, "wrote {} x {} logits to {}\n", ids.size(), model->config().n_vocab, a->out);
  });
});

}  // namespace
}  // namespace flashmem::cli
