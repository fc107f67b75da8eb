// `flashmem eval-tasks -m MODEL [--families F,..] [--lengths N,..] [--samples N] [--seed S]
//  [--value V] [--filler K] [--policy ...] [--json] [--verbose]`: accuracy table of generated
// RULER-style tasks (string-match-all, greedy decoding) by family and length.
#include <fmt/format.h>

#include <nlohmann/json.hpp>

#include "commands.h"
#include "common.h"
#include "eval/harness.h"
#include "tokenizer/tokenizer.h"
#include "util/error.h"
#include "util/timer.h"

namespace flashmem::cli {
namespace {

struct EvalTasksArgs {
  WeightMemory weights = WeightMemory::kMap;  // --weights-memory
  std::string model, value = "number", filler = "noise", kv_type = "f16";
  std::vector<std::string> families = {"niah_single", "niah_multikey"};
  std::vector<int64_t> lengths = {1024, 2048};
  int64_t samples = 50;
  uint64_t seed = 0;
  int threads = 0;
  bool json = false, verbose = false;
  LsaArgs lsa;
};

void run_eval_tasks(const EvalTasksArgs& a) {
  if (a.model.empty()) fail("eval-tasks: -m MODEL is required");
  eval::HarnessOptions o;
  o.families.clear();
  for (const std::string& f : a.families) o.families.push_back(data::parse_family(f));
  if (o.families.empty()) fail("--families is empty");
  if (a.lengths.empty()) fail("--lengths is empty");
  for (const int64_t l : a.lengths)
    if (l < 1 || l > (1 << 22)) fail("length {} is outside [1, 4194304]", l);
  if (a.samples < 1 || a.samples > 1000000) fail("--samples must be in [1, 1000000]");
  o.lengths = a.lengths;
  o.samples = a.samples;
  o.seed = a.seed;
  o.value = data::parse_value_kind(a.value);
  o.filler = data::parse_filler_kind(a.filler);
  auto model = Model::load(a.model, a.weights);
  const Tokenizer tokenizer = Tokenizer::from_gguf(model->file());
  SessionOptions so;
  so.kv_type = parse_kv_type(a.kv_type);
  so.n_threads = a.threads;
  const double start = now_seconds();
  const auto results = eval::evaluate_tasks(
      o, tokenizer,
      [&](int64_t n_ctx) {
        SessionOptions s = so;
        // A sample's prompt and answer room, within the trained context (eval-tasks has no -c).
        s.n_ctx = cli_context(model->config(),
                              {.prompt_tokens = n_ctx,
                               .max_new_tokens = 0,
                               .n_ctx = std::nullopt,
                               .kv_type = so.kv_type},
                              a.lsa.store);
        return make_session(model, s, a.lsa);
      },
      [&](const data::TaskSample& s, const std::string& output, double score) {
        if (!a.verbose) return;
        std::string expected;
        for (const std::string& x : s.answers) expected += (expected.empty() ? "" : " | ") + x;
        fmt::print(stderr, "{}@{} seed {}: score {:.2f} expected [{}] output [{}]\n",
                   data::family_name(s.spec.family), s.spec.length, s.seed, score, expected, output);
      });
  if (a.json) {
    nlohmann::json rows = nlohmann::json::array();
    for (const auto& r : results)
      rows.push_back({{"family", data::family_name(r.plan.family)}, {"length", r.plan.length},
                      {"samples", r.n}, {"score", r.accuracy}, {"solved", r.solved}});
    fmt::print("{}\n", nlohmann::json{{"model", a.model}, {"policy", a.lsa.policy.empty() ? "none" : a.lsa.policy},
                                      {"results", rows}}.dump());
    return;
  }
  fmt::print("{:<17} {:>7} {:>8} {:>7} {:>7}\n", "family", "length", "samples", "score", "solved");
  for (const auto& r : results)
    fmt::print("{:<17} {:>7} {:>8} {:>7.3f} {:>7.3f}\n", data::family_name(r.plan.family), r.plan.length,
               r.n, r.accuracy, r.solved);
  fmt::print(stderr, "eval-tasks: {:.1f} s\n", now_seconds() - start);
}

const CommandRegistration kEvalTasks("eval-tasks", [](CLI::App& app) {
  auto a = std::make_shared<EvalTasksArgs>();
  auto* cmd = app.add_subcommand("eval-tasks", "Accuracy on generated long-context tasks (greedy, string-match-all)");
  cmd->add_option("-m,--model", a->model, "GGUF model")->required();
  cmd->add_option("--families", a->families, "task families")->delimiter(',')->capture_default_str();
  cmd->add_option("--lengths", a->lengths, "prompt lengths in tokens")->delimiter(',')->capture_default_str();
  cmd->add_option("--samples", a->samples, "samples per family and length")->capture_default_str();
  cmd->add_option("--seed", a->seed, "sample seed")->capture_default_str();
  cmd->add_option("--value", a->value, "niah value kind: number | word | uuid")->capture_default_str();
  cmd->add_option("--filler", a->filler, "haystack: noise | words")->capture_default_str();
  cmd->add_option("--kv-type", a->kv_type, "KV cache type: f16 | f32 | q8_0")->capture_default_str();
  add_threads_option(cmd, a->threads);
  add_weights_memory_option(cmd, a->weights);
  cmd->add_flag("--json", a->json, "print one JSON object");
  cmd->add_flag("--verbose", a->verbose, "print every sample's expected answers and output to stderr");
  add_lsa_options(cmd, a->lsa);
  cmd->callback([a] { run_eval_tasks(*a); });
});

}  // namespace
}  // namespace flashmem::cli
