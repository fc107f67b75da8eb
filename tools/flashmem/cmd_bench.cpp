// `flashmem bench`: prefill and decode speed, bytes read per decode token, and how close decode
// comes to the memory-bandwidth floor.
#include <fmt/format.h>

#include "bench/bench_report.h"
#include "bench/bench_run.h"
#include "bench/sequences_bench.h"
#include "commands.h"
#include "common.h"
#include "engine/session.h"

namespace flashmem::cli {
namespace {

struct BenchArgs {
  WeightMemory weights = WeightMemory::kMap;  // --weights-memory
  std::string model, kv_type = "f16";
  int64_t context = 512, gen = 64;
  int threads = 0, repeat = 3, rounds = 1;
  int64_t sequences = 1;
  bool has_sequences = false;  // --sequences given (even 1): the multi-sequence report
  uint64_t seed = 1;
  bool json = false;
  std::string fill = "prefill";
  std::string checkpoint;
  int64_t checkpoint_every = bench::BenchOptions{}.checkpoint_every;
  LsaArgs lsa;
};

// The sessions a bench times: `timed` with the --policy flags; for oracle:F also the untimed
// full-attention `recorder` that records the masses (the shared trace) and tokens it replays.
struct BenchSessions {
  std::unique_ptr<Session> timed, recorder;
};

BenchSessions make_bench_sessions(const std::shared_ptr<Model>& model, const SessionOptions& options,
                                  const LsaArgs& lsa) {
  BenchSessions s;
  std::shared_ptr<OracleTrace> trace;
  if (is_oracle(lsa)) {
    trace = std::make_shared<OracleTrace>();
    const SequenceOptions so = sequence_options(lsa, options.n_ctx, options.kv_type);
    s.recorder = make_paged_session(model, options, full_attention_options(*so.paged), trace);
  }
  s.timed = make_session(model, options, lsa, trace);
  return s;
}

void run_bench(const BenchArgs& a) {
  bench::BenchOptions o;
  o.context = a.context;
  o.gen = a.gen;
  o.repeat = a.repeat;
  o.rounds = a.rounds;
  o.seed = a.seed;
  if (a.fill != "prefill" && a.fill != "random") fail("--fill must be prefill or random");
  o.synthetic = a.fill == "random";
  o.checkpoint = a.checkpoint;
  o.checkpoint_every = a.checkpoint_every;
  if (!a.checkpoint.empty() && (a.has_sequences || is_oracle(a.lsa)))
    fail("--checkpoint resumes one sequence's prefill: not with --sequences or oracle:F");
  if (!a.checkpoint.empty() && a.lsa.policy.empty())
    fail("--checkpoint keeps the prefill in the slow tier: it needs a --policy and --kv-store disk:DIR or redis://");
  bench::validate_bench_options(o);
  auto model = Model::load(a.model, a.weights);
  SessionOptions options;
  options.kv_type = parse_kv_type(a.kv_type);
  // --context is an explicit depth: beyond the trained context it warns, beyond memory it fails.
  // --sequences N decodes --repeat rounds one after another, each --gen tokens deeper.
  const int64_t generated = a.has_sequences ? a.gen * a.repeat : a.gen * a.rounds;
  options.n_ctx = cli_context(model->config(), {.prompt_tokens = a.context, .max_new_tokens = generated,
                                                .n_ctx = a.context + generated, .kv_type = options.kv_type},
                              a.lsa.store);
  options.n_threads = a.threads;
  const bench::BenchLabels labels{.model = a.model, .kv_type = a.kv_type, .fill = a.fill,
                                  .policy = a.lsa.policy, .kv_store = a.lsa.store, .budget = a.lsa.budget,
                                  .budget_tokens = a.lsa.budget_tokens, .lsa_prefetch = a.lsa.lsa_prefetch};
  if (a.has_sequences) {
    if (a.rounds != 1) fail("--rounds is for one sequence; --sequences decodes --repeat rounds after one prefill");
    // Many sequences on one engine (oracle:F needs a recording pass per sequence: not here).
    if (is_oracle(a.lsa)) fail("--sequences does not run oracle:F");
    Engine engine(model, engine_options(a.lsa, a.threads));
    const bench::SequencesBenchResult r = bench::run_sequences_bench(
        engine, sequence_options(a.lsa, options.n_ctx, options.kv_type), a.sequences, o);
    fmt::print("{}", bench::render_sequences_text(r, labels));
    if (a.json) fmt::print("{}\n", bench::sequences_to_json(r, labels).dump());
    return;
  }
  const BenchSessions sessions = make_bench_sessions(model, options, a.lsa);
  const bench::BenchResult r = bench::run_bench(*model, *sessions.timed, sessions.recorder.get(), o);
  fmt::print("{}", bench::render_bench_text(r, labels));
  if (a.json) fmt::print("{}\n", bench::bench_to_json(r, labels).dump());
}

const CommandRegistration kBench("bench", [](CLI::App& app) {
  auto* cmd = app.add_subcommand("bench", "Measure prefill/decode speed against the bandwidth floor");
  auto a = std::make_shared<BenchArgs>();
  cmd->add_option("-m,--model", a->model, "GGUF model")->required();
  cmd->add_option("--context", a->context, "prompt length in tokens")->capture_default_str();
  cmd->add_option("--gen", a->gen, "decoded tokens")->capture_default_str();
  add_threads_option(cmd, a->threads);
  add_weights_memory_option(cmd, a->weights);
  cmd->add_option("--repeat", a->repeat, "histories (prefills or fills); the median is reported")
      ->capture_default_str();
  cmd->add_option("--rounds", a->rounds,
                  "decode rounds of --gen steps timed after each history (spread without re-prefilling)")
      ->capture_default_str();
  cmd->add_option("--kv-type", a->kv_type, "KV cache type: f16 | f32 | q8_0")->capture_default_str();
  cmd->add_option("--seed", a->seed, "seed of the random prompt (repeat i prefills the prompt of seed + i)")->capture_default_str();
  cmd->add_option("--sequences", a->sequences,
                  "sequences decoded together in one batch per step (aggregate throughput; "
                  "--repeat rounds of --gen steps after one prefill)")
      ->capture_default_str()
      // 4096: beyond what one machine holds at any useful context; a typo is refused before
      // anything is allocated.
      ->check(CLI::Range(int64_t{1}, int64_t{4096}));
  cmd->add_flag("--json", a->json, "print one JSON object on the last line");
  cmd->add_option("--fill", a->fill, "prefill: run the prompt | random: synthetic KV history")
      ->capture_default_str();
  cmd->add_option("--checkpoint", a->checkpoint,
                  "persist the prefill under this id in the --kv-store every --checkpoint-every tokens; "
                  "a run that finds the id resumes its prefill there");
  cmd->add_option("--checkpoint-every", a->checkpoint_every, "prompt tokens between checkpoints")
      ->capture_default_str();
  add_lsa_options(cmd, a->lsa);
  cmd->callback([a, cmd] {
    a->has_sequences = cmd->count("--sequences") > 0;
    run_bench(*a);
  });
});

}  // namespace
}  // namespace flashmem::cli
