// `flashmem dump`: backbone + corpus -> .fmdump files (src/train/dump_runner.h).
#include <fmt/format.h>

#include <filesystem>
#include <nlohmann/json.hpp>

#include "commands.h"
#include "common.h"
#include "tokenizer/tokenizer.h"
#include "train/dump_runner.h"
#include "util/dir_lock.h"

namespace flashmem::cli {
namespace {

struct DumpArgs {
  WeightMemory weights = WeightMemory::kMap;  // --weights-memory
  std::string model, corpus, out, layers, mode = "teacher", head_reduce = "mean";
  DumpOptions options;
  bool json = false;
};

void run(DumpArgs& a) {
  if (a.mode != "teacher" && a.mode != "generate") fail("--mode must be teacher or generate, not '{}'", a.mode);
  a.options.out_dir = a.out;
  std::error_code ec;
  std::filesystem::create_directories(a.out, ec);
  if (ec) fail("cannot create output directory '{}': {}", a.out, ec.message());
  const DirLock lock = DirLock::lock_directory(a.out);  // one writer of --out at a time
  a.options.layers = parse_layer_list(a.layers);
  a.options.labels.reduce = parse_head_reduce(a.head_reduce);
  const bool generated_corpus = a.corpus.rfind("generate:", 0) == 0;
  a.options.generate = a.mode == "generate" || generated_corpus;
  auto model = Model::load(a.model, a.weights);
  if (a.options.max_tokens == 0) a.options.max_tokens = model->config().context_length;
  const Tokenizer tokenizer = Tokenizer::from_gguf(model->file());
  CorpusOptions co;
  co.max_tokens = a.options.max_tokens;
  co.label_from = std::min(a.options.label_from, a.options.max_tokens - 1);
  co.seed = a.options.sampling.seed;
  const std::vector<CorpusDocument> docs = load_corpus(a.corpus, tokenizer, co);
  const DumpSummary s = run_dump(model, a.model, docs, a.options);
  const LabelStats& l = s.labels;
  const double tps = s.seconds > 0 ? static_cast<double>(s.tokens) / s.seconds : 0.0;
  auto frac = [](int64_t x, int64_t y) { return y > 0 ? static_cast<double>(x) / static_cast<double>(y) : 0.0; };
  const int64_t golden_all = l.golden + (a.options.labels.exclude_sink > 0 ? l.golden_in_sink : 0) +
                             (a.options.labels.exclude_tail > 0 ? l.golden_in_tail : 0);
  fmt::print("documents {} (written {}, already there {}), tokens {}, labeled {}, {:.1f} s, {:.0f} tok/s\n",
             s.documents, s.written, s.skipped, s.tokens, s.labeled, s.seconds, tps);
  if (l.tokens == 0)  // every document already there (or none labeled): no label statistics
    fmt::print("no tokens labeled in this run: no label statistics\n");
  else
    fmt::print("golden chunks per token {:.2f} of {:.1f}; in sink({}) {:.1f}%, in tail({}) {:.1f}%; "
               "focused heads covered {:.1f}% ({} heads)\n",
               frac(l.golden, l.tokens), frac(l.candidate_chunks, l.tokens), a.options.report_sink,
               100 * frac(l.golden_in_sink, golden_all), a.options.report_tail, 100 * frac(l.golden_in_tail, golden_all),
               100 * frac(l.focused_covered, l.focused_heads), l.focused_heads);
  if (a.json) {
    nlohmann::json j = {{"documents", s.documents}, {"written", s.written}, {"skipped", s.skipped},
                        {"tokens", s.tokens}, {"labeled", s.labeled}, {"seconds", s.seconds},
                        {"tokens_per_second", tps}, {"golden_per_token", frac(l.golden, l.tokens)},
                        {"golden_in_sink", frac(l.golden_in_sink, golden_all)},
                        {"golden_in_tail", frac(l.golden_in_tail, golden_all)},
                        {"focused_head_coverage", frac(l.focused_covered, l.focused_heads)},
                        {"head_reduce", a.head_reduce}};
    fmt::print("{}\n", j.dump());
  }
}

const CommandRegistration kDump("dump", [](CLI::App& app) {
  auto* cmd = app.add_subcommand("dump", "Run the backbone (full attention) over a corpus and write indexer training dumps");
  auto a = std::make_shared<DumpArgs>();
  DumpOptions& o = a->options;
  a->options.max_tokens = 0;
  cmd->add_option("-m,--model", a->model, "backbone .gguf")->required();
  cmd->add_option("--corpus", a->corpus, "generate:N | tasks:FAMILY[,...]:N | tasks:all:N | FILE.jsonl | FILE (plain text)")->required();
  cmd->add_option("--out", a->out, "output directory (doc-NNNNNN.fmdump; resumable: dumps made from the same inputs are kept, from other inputs an error)")->required();
  cmd->add_option("--layers", a->layers, "target layers, comma-separated backbone ids")->required();
  cmd->add_option("--mode", a->mode, "teacher (label the given text) | generate (label the model's continuation)")->capture_default_str();
  cmd->add_option("--top-p", o.labels.top_p, "attention mass a layer's label set covers")->capture_default_str();
  cmd->add_option("--min-layers", o.labels.min_layers, "layers that must select a chunk (clipped to the layer count)")->capture_default_str();
  cmd->add_option("--head-reduce", a->head_reduce, "mean | max over heads before top-p")->capture_default_str();
  cmd->add_option("--chunk-tokens", o.labels.chunk_tokens, "tokens per index chunk")->capture_default_str();
  cmd->add_option("--exclude-sink", o.labels.exclude_sink, "drop golden chunks within the first N tokens (0 = keep)")->capture_default_str();
  cmd->add_option("--exclude-tail", o.labels.exclude_tail, "drop golden chunks within a token's last N positions (0 = keep)")->capture_default_str();
  cmd->add_option("--max-tokens", o.max_tokens, "document length cap (default: model context)");
  cmd->add_option("--gen-tokens", o.gen_tokens, "generate mode: tokens to generate (0 = up to --max-tokens)")->capture_default_str();
  cmd->add_option("--label-from", o.label_from, "first labeled position (also text files' prompt length)")->capture_default_str();
  cmd->add_option("--temp", o.sampling.temperature, "generate mode: sampling temperature");
  cmd->add_option("--top-k", o.sampling.top_k, "generate mode: top-k")->capture_default_str();
  cmd->add_option("--seed", o.sampling.seed, "generate mode and tasks: corpus: seed (document i uses seed + i)")->capture_default_str();
  cmd->add_option("--batch", o.batch, "tokens per forward batch")->capture_default_str();
  add_threads_option(cmd, o.n_threads);
  add_weights_memory_option(cmd, a->weights);
  cmd->add_flag("--progress", o.progress, "print the progress line even when stderr is not a terminal");
  cmd->add_flag("--json", a->json, "print a JSON summary as the last line");
  o.sampling.temperature = 1.0f;  // sampled continuations: greedy text of a tiny model loops
  o.sampling.top_p = 1.0f;
  o.sampling.min_p = 0.0f;
  cmd->callback([a] { run(*a); });
});

}  // namespace
}  // namespace flashmem::cli
