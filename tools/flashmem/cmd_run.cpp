// `flashmem run`: generate text from a prompt.
#include <fmt/format.h>

#include <cstdio>

#include "commands.h"
#include "common.h"
#include "engine/generate.h"
#include "tokenizer/tokenizer.h"
#include "util/error.h"
#include "util/read_file.h"

namespace flashmem::cli {
namespace {

struct RunArgs {
  WeightMemory weights = WeightMemory::kMap;  // --weights-memory
  std::string model, prompt, prompt_file, kv_type = "f16";
  int64_t n_predict = 128, n_ctx = 0;  // n_ctx: -c, read only when has_ctx
  int threads = 0;
  SamplerOptions sampling;
  LsaArgs lsa;
  bool parse_special = false, stats = false, ids = false;
  bool has_prompt = false, has_file = false;  // -p "" is a valid (BOS-only) prompt
  bool has_ctx = false;                       // -c given (then checked, never "the default")
  std::string save_seq, resume_seq;           // persisted sequence ids (Sequence::persist)
};


void print_speed(const char* label, const GenerationStats& st) {
  fmt::print(stderr, "{}prompt: {} tokens in {:.2f} s ({:.1f} tok/s)\n", label, st.prompt_tokens,
             st.prefill_seconds, st.prompt_tokens / st.prefill_seconds);
  fmt::print(stderr, "{}decode: {} tokens in {:.2f} s ({:.1f} tok/s){}\n", label,
             st.generated_tokens, st.decode_seconds,
             st.decode_seconds > 0 ? st.generated_tokens / st.decode_seconds : 0.0,
             st.stopped_at_eog ? ", stopped at end-of-generation token" : "");
}

void print_kv_stats(const std::string& policy, const LsaStats& s) {
  fmt::print(stderr,
             "kv: policy {}, full {:.2f} MB, resident avg {:.2f} MB (peak {:.2f} MB, {:.1f}% "
             "of full), attention reads {:.2f} MB/step, recalled {:.2f} MB, misses {}, "
             "{} cycles, {:.2f} ms/cycle\n",
             policy, s.full_kv_bytes / 1e6, s.resident_kv_bytes_avg / 1e6,
             s.resident_kv_bytes_peak / 1e6, 100 * s.resident_fraction_avg,
             s.attn_bytes_per_step / 1e6, s.recall_bytes_total / 1e6, s.recall_misses, s.cycles,
             s.indexer_ms_per_cycle);
  if (s.page_meta_bytes > 0)
    fmt::print(stderr, "kv: quest key bounds {:.2f} MB, {} pages read synchronously ({:.2f} MB of their layers)\n",
               s.page_meta_bytes / 1e6, s.sync_reads, s.sync_read_bytes / 1e6);
  if (s.fallback_cycles > 0)
    fmt::print(stderr, "kv: lsa fallback widened {} of {} cycles\n", s.fallback_cycles, s.cycles);
}

// oracle:F: a full-attention pass records the attention masses, then the output printed is the
// regeneration under oracle selection (runtime/oracle.h).
void run_oracle(const RunArgs& a, const std::shared_ptr<Model>& model,
                const SessionOptions& options, const GenerationRequest& request) {
  check_lsa_args(a.lsa);
  const OracleGeneration out =
      generate_with_oracle(model, options, paged_options(a.lsa), a.sampling, request);
  std::fputc('\n', stdout);
  if (!a.stats) return;
  size_t same = 0;
  while (same < out.oracle_tokens.size() && out.oracle_tokens[same] == out.full_tokens[same]) ++same;
  print_speed("full pass (recording): ", out.full_stats);
  print_speed("oracle pass: ", out.oracle_stats);
  fmt::print(stderr, "oracle pass: first {} of {} tokens identical to the full-attention pass\n",
             same, out.full_tokens.size());
  print_kv_stats(a.lsa.policy, out.oracle_kv);
}

void run(const RunArgs& a) {
  if (a.has_prompt == a.has_file) fail("give exactly one of -p PROMPT or -f FILE");
  validate_sampler_options(a.sampling);
  if (a.n_predict < 0) fail("-n must be >= 0");
  auto model = Model::load(a.model, a.weights);
  const Tokenizer tokenizer = Tokenizer::from_gguf(model->file());
  const std::string text = a.has_file ? read_file(a.prompt_file, "prompt file") : a.prompt;
  const bool resume = !a.resume_seq.empty(), persisted = resume || !a.save_seq.empty();
  if (persisted && a.lsa.policy.empty())
    fail("--save-seq and --resume-seq keep a paged sequence: give a --policy (e.g. full)");
  if (persisted && is_oracle(a.lsa)) fail("an oracle:F sequence cannot be saved or resumed");
  // A resumed prompt continues the history: no BOS in the middle of it.
  const std::vector<int32_t> prompt = tokenizer.encode(text, /*add_special=*/!resume, a.parse_special);
  if (prompt.empty()) fail("the prompt tokenizes to nothing");

  SessionOptions options;
  options.kv_type = parse_kv_type(a.kv_type);
  const ContextRequest context{.prompt_tokens = static_cast<int64_t>(prompt.size()),
                               .max_new_tokens = a.n_predict,
                               // A saved sequence is resumed with the same capacity: the
                               // model's trained context unless -c says otherwise (each time).
                               .n_ctx = a.has_ctx    ? std::optional<int64_t>(a.n_ctx)
                                        : persisted ? std::optional<int64_t>(model->config().context_length)
                                                    : std::nullopt,
                               .kv_type = options.kv_type};
  options.n_ctx = cli_context(model->config(), context, a.lsa.store);
  options.n_threads = a.threads;
  GenerationRequest request;
  request.prompt = prompt;
  request.max_tokens = a.n_predict;
  request.is_end = [&](int32_t t) { return tokenizer.is_eog(t); };
  request.on_token = [&](int32_t t) {
    if (a.ids) {
      fmt::print("{} ", t);
    } else {
      const std::string piece = tokenizer.token_to_piece(t);
      std::fwrite(piece.data(), 1, piece.size(), stdout);
    }
    flush_stdout();
    return true;
  };
  if (is_oracle(a.lsa)) {
    run_oracle(a, model, options, request);
    return;
  }
  Engine engine(model, engine_options(a.lsa, a.threads));
  SequenceOptions so = sequence_options(a.lsa, options.n_ctx, options.kv_type);
  so.attach = a.resume_seq;
  Sequence sequence(engine, so);
  if (resume && a.stats)
    fmt::print(stderr, "resumed sequence '{}': {} tokens of history, none prefilled again\n",
               a.resume_seq, sequence.n_past());
  Sampler sampler(a.sampling);
  request.feed_last = !a.save_seq.empty();  // the saved history holds every printed token
  const GenerationStats st = generate(engine, sequence, sampler, request);
  std::fputc('\n', stdout);
  if (!a.save_seq.empty()) sequence.persist(a.save_seq);
  if (a.stats) {
    print_speed("", st);
    if (const PagedKv* kv = sequence.paged()) {
      print_kv_stats(kv->policy().name(), kv->stats());
    } else {
      fmt::print(stderr, "kv cache: {:.2f} MB ({}, capacity {} tokens)\n",
                 kv_bytes(model->config(), sequence.capacity(), sequence.kv_type()) / 1e6, a.kv_type,
                 sequence.capacity());
    }
  }
}

const CommandRegistration kRun("run", [](CLI::App& app) {
  auto* cmd = app.add_subcommand("run", "Generate text from a prompt");
  auto a = std::make_shared<RunArgs>();
  cmd->add_option("-m,--model", a->model, "GGUF model")->required();
  cmd->add_option("-p,--prompt", a->prompt, "prompt text");
  cmd->add_option("-f,--file", a->prompt_file, "read the prompt from a file");
  cmd->add_option("-n,--n-predict", a->n_predict, "tokens to generate")->capture_default_str();
  cmd->add_option("-c,--ctx-size", a->n_ctx,
                  "KV capacity (default: prompt + n, up to the model's trained context)");
  add_sampler_options(cmd, a->sampling);
  cmd->add_option("--kv-type", a->kv_type, "KV cache type: f16 | f32 | q8_0")->capture_default_str();
  add_threads_option(cmd, a->threads);
  add_weights_memory_option(cmd, a->weights);
  cmd->add_flag("--parse-special", a->parse_special, "recognise special-token text in the prompt");
  cmd->add_flag("--ids", a->ids, "print token ids instead of text");
  cmd->add_flag("--stats", a->stats, "print speed and memory to stderr");
  add_lsa_options(cmd, a->lsa);
  cmd->add_option("--save-seq", a->save_seq,
                  "after the run, keep the sequence (prompt and output) in the --kv-store tier "
                  "(disk:DIR or redis://) under this id");
  cmd->add_option("--resume-seq", a->resume_seq,
                  "continue the sequence kept under this id: the prompt is appended to its history "
                  "(no BOS), which is not prefilled again; the same --policy, -c, --kv-type and "
                  "page options as when it was saved");
  cmd->callback([a, cmd] {
    a->has_prompt = cmd->count("--prompt") > 0;
    a->has_file = cmd->count("--file") > 0;
    a->has_ctx = cmd->count("--ctx-size") > 0;
    run(*a);
  });
});

}  // namespace
}  // namespace flashmem::cli
