// `flashmem gen-task --family F --length N --seed S (-m MODEL | --word-vocab) [--value V]
//  [--filler K] [--needles N] [--out FILE] [--json]`: generates one RULER-style task sample.
// The prompt goes to --out (or stdout); the expected answers are printed one per line (or, with
// --json, one JSON object with answers, token count and evidence token spans).
#include <fmt/format.h>

#include <nlohmann/json.hpp>

#include "commands.h"
#include "data/task.h"
#include "data/word_vocab.h"
#include "gguf/gguf.h"
#include "tokenizer/tokenizer.h"
#include "util/atomic_file.h"
#include "util/error.h"

namespace flashmem::cli {
namespace {

struct GenTaskArgs {
  std::string model, family = "niah_single", value = "number", filler = "noise", out;
  int64_t length = 1024;
  uint64_t seed = 0;
  int needles = 0;
  bool word_vocab = false, json = false;
};

void run_gen_task(const GenTaskArgs& a) {
  if (a.model.empty() == !a.word_vocab) fail("gen-task: give exactly one of -m MODEL or --word-vocab");
  data::TaskSpec spec;
  spec.family = data::parse_family(a.family);
  spec.value = data::parse_value_kind(a.value);
  spec.filler = data::parse_filler_kind(a.filler);
  spec.length = a.length;
  spec.n_needles = a.needles;
  data::validate_task_spec(spec);
  const Tokenizer tokenizer = a.word_vocab ? Tokenizer(data::word_vocab_spec())
                                           : Tokenizer::from_gguf(GgufFile::open(a.model));
  const data::TaskSample s = data::generate_task(spec, a.seed, tokenizer);
  if (!a.out.empty()) write_file_atomic(a.out, s.prompt);
  if (a.json) {
    nlohmann::json evidence = nlohmann::json::array();
    for (const data::TokenSpan& e : s.evidence) evidence.push_back({e.begin, e.end});
    nlohmann::json j = {{"family", a.family},        {"value", a.value},
                        {"filler", a.filler},        {"length", a.length},
                        {"seed", a.seed},            {"n_tokens", s.tokens.size()},
                        {"answers", s.answers},      {"evidence", evidence}};
    if (a.out.empty()) j["prompt"] = s.prompt;
    fmt::print("{}\n", j.dump());
    return;
  }
  if (a.out.empty()) fmt::print("{}\n", s.prompt);
  for (const std::string& answer : s.answers) fmt::print("{}\n", answer);
}

const CommandRegistration kGenTask("gen-task", [](CLI::App& app) {
  auto a = std::make_shared<GenTaskArgs>();
  auto* cmd = app.add_subcommand("gen-task", "Generate one RULER-style long-context task sample");
  cmd->add_option("--family", a->family,
                  "niah_single | niah_multikey | niah_multivalue | niah_multiquery | vt | fwe")
      ->capture_default_str();
  cmd->add_option("--length", a->length, "prompt length in tokens of the model's tokenizer")
      ->capture_default_str();
  cmd->add_option("--seed", a->seed, "sample seed")->capture_default_str();
  cmd->add_option("-m,--model", a->model, "GGUF model whose tokenizer measures the length");
  cmd->add_flag("--word-vocab", a->word_vocab, "use the generator's word vocabulary instead of -m");
  cmd->add_option("--value", a->value, "niah value kind: number | word | uuid")->capture_default_str();
  cmd->add_option("--filler", a->filler, "haystack: noise | words")->capture_default_str();
  cmd->add_option("--needles", a->needles, "needles (keys/values/variables); 0 = family default")
      ->capture_default_str();
  cmd->add_option("--out", a->out, "write the prompt here (atomic) instead of stdout");
  cmd->add_flag("--json", a->json, "print answers and evidence spans as one JSON object");
  cmd->callback([a] { run_gen_task(*a); });
});

}  // namespace
}  // namespace flashmem::cli
