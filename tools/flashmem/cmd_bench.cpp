// `flashmem bench`: prefill and decode speed, bytes read per decode token, and how close decode
// comes to the memory-bandwidth floor.
#include <fmt/format.h>

#include <algorithm>
#include <nlohmann/json.hpp>
#include <cstdio>
#include <random>

#include "commands.h"
#include "common.h"
#include "model/sampler.h"
#include "model/session.h"
#include "util/bandwidth.h"
#include "util/timer.h"

namespace flashmem::cli {
namespace {

struct BenchArgs {
  std::string model, kv_type = "f16";
  int64_t context = 512, gen = 64;
  int threads = 0, repeat = 3;
  uint64_t seed = 1;
  bool json = false;
  std::string fill = "prefill";
  LsaArgs lsa;
};

// Peak resident set size of this process (VmHWM), 0 if unknown.
double peak_rss_bytes() {
  std::FILE* f = std::fopen("/proc/self/status", "r");
  if (f == nullptr) return 0;
  char line[256];
  double kb = 0;
  while (std::fgets(line, sizeof line, f) != nullptr)
    if (std::sscanf(line, "VmHWM: %lf kB", &kb) == 1) break;
  std::fclose(f);
  return kb * 1024;
}

double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  const size_t m = v.size() / 2;
  return v.size() % 2 ? v[m] : 0.5 * (v[m - 1] + v[m]);
}

void run_bench(const BenchArgs& a) {
  if (a.context < 1 || a.gen < 1 || a.repeat < 1) fail("--context, --gen and --repeat must be >= 1");
  auto model = Model::load(a.model);
  const ModelConfig& c = model->config();
  SessionOptions options;
  options.kv_type = parse_kv_type(a.kv_type);
  // --context is an explicit depth: beyond the trained context it warns, beyond memory it fails.
  options.n_ctx = cli_context(c, {.prompt_tokens = a.context, .max_new_tokens = a.gen,
                                  .n_ctx = a.context + a.gen, .kv_type = options.kv_type},
                              a.lsa.store);
  options.n_threads = a.threads;
  if (a.fill != "prefill" && a.fill != "random") fail("--fill must be prefill or random");
  const bool synthetic = a.fill == "random";
  // oracle:F: before every timed repeat, an untimed full-attention pass over the same history
  // records the attention masses and the tokens; the timed oracle pass replays those tokens.
  const bool oracle = is_oracle(a.lsa);
  std::shared_ptr<OracleTrace> trace;
  std::unique_ptr<Session> recorder;
  if (oracle) {
    trace = std::make_shared<OracleTrace>();
    LsaArgs full = a.lsa;
    full.policy = "full";
    full.budget = -1;
    recorder = make_session(model, options, full, trace);
  }
  auto session_ptr = make_session(model, options, a.lsa, trace);
  Session& session = *session_ptr;

  // The prompt: seeded random ids above the special tokens (content does not change the cost).
  std::mt19937_64 rng(a.seed);
  std::uniform_int_distribution<int32_t> pick(std::min<int32_t>(3, c.n_vocab - 1),
                                              static_cast<int32_t>(c.n_vocab - 1));
  std::vector<int32_t> prompt(static_cast<size_t>(a.context));
  for (int32_t& t : prompt) t = pick(rng);

  std::vector<float> logits(static_cast<size_t>(c.n_vocab));
  std::vector<double> prefill_rates, decode_rates;
  double rss_prefill = 0;  // peak RSS (VmHWM) right after the first timed prefill
  ForwardTimes decode_times;  // of the last repeat
  // One sequence: history (prefill or synthetic), then `gen` decode steps, greedy or replaying
  // `forced`; the decoded tokens go to `decoded`. Returns the decode rate.
  auto run_sequence = [&](Session& s, int r, const std::vector<int32_t>* forced,
                          std::vector<int32_t>* decoded) {
    s.reset();
    double t0 = now_seconds();
    int32_t token = prompt.back();
    if (synthetic) {
      // The history holds seeded random K/V (and indexer keys): decode cost at depth without
      // the hour a real long prefill takes on 2 cores. Prefill speed is not measured.
      s.fill_synthetic(a.context - 1, a.seed + static_cast<uint64_t>(r));
      s.forward(std::span(&token, 1), logits.data(), false);
    } else {
      s.forward(prompt, logits.data(), false);
      if (&s == &session) prefill_rates.push_back(static_cast<double>(a.context) / (now_seconds() - t0));
      if (&s == &session && rss_prefill == 0) rss_prefill = peak_rss_bytes();
    }
    token = argmax(logits);
    s.reset_times();
    t0 = now_seconds();
    for (int64_t i = 0; i < a.gen; ++i) {
      if (forced != nullptr) token = (*forced)[static_cast<size_t>(i)];
      if (decoded != nullptr) decoded->push_back(token);
      const int32_t in[1] = {token};
      s.forward(in, logits.data(), false);
      token = argmax(logits);
    }
    return static_cast<double>(a.gen) / (now_seconds() - t0);
  };
  for (int r = 0; r < a.repeat; ++r) {
    std::vector<int32_t> recorded;
    if (oracle) run_sequence(*recorder, r, nullptr, &recorded);
    decode_rates.push_back(run_sequence(session, r, oracle ? &recorded : nullptr, nullptr));
    decode_times = session.times();
  }
  const double prefill_tok_s = synthetic ? 0.0 : median(prefill_rates);
  const double decode_tok_s = median(decode_rates);

  // Bytes one decode step reads: all weights + the K and V attention reads (every position so
  // far, or what the runtime measured it read).
  const PagedKv* paged = paged_kv(session);
  const double kv_row = static_cast<double>(row_bytes(session.kv().type(), c.kv_dim()));
  const double avg_keys = static_cast<double>(a.context) + static_cast<double>(a.gen + 1) / 2.0;
  const double kv_bytes = paged != nullptr
                              ? static_cast<double>(paged->stats().attn_bytes_per_step)
                              : 2.0 * static_cast<double>(c.n_layers) * avg_keys * kv_row;
  const double weight_bytes = static_cast<double>(model->decode_weight_bytes());
  const double bytes_per_token = weight_bytes + kv_bytes;
  // Peak RSS of the model and its KV, read before the bandwidth probe's buffer joins it.
  const double rss_peak = peak_rss_bytes();
  const double bandwidth_gbs = measure_read_bandwidth_gbs(session.pool());
  const double floor_tok_s = bandwidth_gbs * 1e9 / bytes_per_token;
  const double floor_ratio = floor_tok_s / decode_tok_s;

  fmt::print("model: {} ({}, {} layers, dim {}, {} weights), threads {}\n", a.model, c.arch->name,
             c.n_layers, c.dim, dtype_info(model->main_weight_type()).name, session.pool().size());
  if (synthetic) {
    fmt::print("context: {:>6} tokens of synthetic KV (--fill random; prefill not measured)\n", a.context);
  } else {
    fmt::print("prefill: {:>6} tokens  {:8.1f} tok/s (median of {})\n", a.context, prefill_tok_s, a.repeat);
  }
  fmt::print("decode:  {:>6} tokens  {:8.1f} tok/s (median of {})\n", a.gen, decode_tok_s, a.repeat);
  fmt::print("bytes per decode token: {:.1f} MB (weights {:.1f} MB + KV {:.2f} MB, kv {})\n",
             bytes_per_token / 1e6, weight_bytes / 1e6, kv_bytes / 1e6, a.kv_type);
  fmt::print("memory read bandwidth: {:.1f} GB/s (measured) -> floor {:.1f} tok/s\n", bandwidth_gbs,
             floor_tok_s);
  fmt::print("floor ratio: {:.2f} (decode time per token / bandwidth floor)\n", floor_ratio);
  const double split_total = decode_times.matmul + decode_times.attention + decode_times.other;
  // Read rate of each part: its bytes per token over its time per token. Against bandwidth_gbs
  // this shows which part is short of the memory bus (0 when a part took no measurable time).
  auto rate_gbs = [&](double bytes, double seconds) {
    return seconds > 0 ? bytes * a.gen / seconds / 1e9 : 0.0;
  };
  const double weights_gbs = rate_gbs(weight_bytes, decode_times.matmul);
  const double attention_gbs = rate_gbs(kv_bytes, decode_times.attention);
  fmt::print("decode time split: weights {:.0f}% ({:.1f} GB/s), attention {:.0f}% ({:.1f} GB/s), "
             "other {:.0f}%\n",
             100 * decode_times.matmul / split_total, weights_gbs,
             100 * decode_times.attention / split_total, attention_gbs,
             100 * decode_times.other / split_total);
  LsaStats lsa;
  if (paged != nullptr) {
    lsa = paged->stats();
    fmt::print("kv policy {} (store {}): resident avg {:.1f} MB / peak {:.1f} MB of {:.1f} MB full "
               "({:.1f}%), attention reads {:.2f} MB/step, recalled {:.1f} MB, misses {}, "
               "selection {:.2f} ms/cycle, recall wait {:.1f} ms\n",
               paged->policy().name(), a.lsa.store, lsa.resident_kv_bytes_avg / 1e6,
               lsa.resident_kv_bytes_peak / 1e6, lsa.full_kv_bytes / 1e6,
               100 * lsa.resident_fraction_avg, lsa.attn_bytes_per_step / 1e6,
               lsa.recall_bytes_total / 1e6, lsa.recall_misses, lsa.indexer_ms_per_cycle,
               lsa.recall_wait_ms);
    if (lsa.page_meta_bytes > 0)
      fmt::print("quest: key bounds {:.2f} MB resident, {} pages read synchronously (in misses), "
                 "{:.1f} MB of their layers (in recalled)\n",
                 lsa.page_meta_bytes / 1e6, lsa.sync_reads, lsa.sync_read_bytes / 1e6);
    if (oracle) fmt::print("oracle: masses from an untimed full-attention pass before each repeat\n");
  }
  fmt::print("peak RSS: {:.1f} MB", rss_peak / 1e6);
  if (!synthetic) fmt::print(" ({:.1f} MB at the end of the first prefill)", rss_prefill / 1e6);
  fmt::print("\n");
  if (a.json) {
    nlohmann::json j = {
        {"model", a.model},
        {"threads", session.pool().size()},
        {"context", a.context},
        {"gen", a.gen},
        {"repeat", a.repeat},
        {"kv_type", a.kv_type},
        {"weight_type", dtype_info(model->main_weight_type()).name},
        {"prefill_tok_s", prefill_tok_s},
        {"decode_tok_s", decode_tok_s},
        {"bytes_per_token", bytes_per_token},
        {"weight_bytes_per_token", weight_bytes},
        {"kv_bytes_per_token", kv_bytes},
        {"bandwidth_gbs", bandwidth_gbs},
        {"floor_tok_s", floor_tok_s},
        {"floor_ratio", floor_ratio},
        {"decode_ms_weights", 1e3 * decode_times.matmul / a.gen},
        {"decode_ms_attention", 1e3 * decode_times.attention / a.gen},
        {"decode_ms_other", 1e3 * decode_times.other / a.gen},
        {"weights_gbs", weights_gbs},
        {"attention_gbs", attention_gbs},
        {"fill", a.fill},
        {"policy", a.lsa.policy.empty() ? "none" : a.lsa.policy},
        {"kv_store", a.lsa.store},
        {"rss_peak_bytes", rss_peak},
        {"rss_peak_prefill_bytes", rss_prefill},
    };
    if (paged != nullptr) {
      j["resident_kv_bytes_avg"] = lsa.resident_kv_bytes_avg;
      j["resident_kv_bytes_peak"] = lsa.resident_kv_bytes_peak;
      j["full_kv_bytes"] = lsa.full_kv_bytes;
      j["resident_fraction_avg"] = lsa.resident_fraction_avg;
      j["attn_bytes_per_step"] = lsa.attn_bytes_per_step;
      j["recall_bytes_total"] = lsa.recall_bytes_total;
      j["recall_misses"] = lsa.recall_misses;
      j["indexer_ms_per_cycle"] = lsa.indexer_ms_per_cycle;
      j["recall_wait_ms"] = lsa.recall_wait_ms;
      j["cycles"] = lsa.cycles;
      j["page_meta_bytes"] = lsa.page_meta_bytes;
      j["sync_reads"] = lsa.sync_reads;
      j["sync_read_bytes"] = lsa.sync_read_bytes;
    }
    fmt::print("{}\n", j.dump());
  }
}

const CommandRegistration kBench("bench", [](CLI::App& app) {
  auto* cmd = app.add_subcommand("bench", "Measure prefill/decode speed against the bandwidth floor");
  auto a = std::make_shared<BenchArgs>();
  cmd->add_option("-m,--model", a->model, "GGUF model")->required();
  cmd->add_option("--context", a->context, "prompt length in tokens")->capture_default_str();
  cmd->add_option("--gen", a->gen, "decoded tokens")->capture_default_str();
  add_threads_option(cmd, a->threads);
  cmd->add_option("--repeat", a->repeat, "repeats (the median is reported)")->capture_default_str();
  cmd->add_option("--kv-type", a->kv_type, "KV cache type: f16 | f32 | q8_0")->capture_default_str();
  cmd->add_option("--seed", a->seed, "seed of the random prompt")->capture_default_str();
  cmd->add_flag("--json", a->json, "print one JSON object on the last line");
  cmd->add_option("--fill", a->fill, "prefill: run the prompt | random: synthetic KV history")
      ->capture_default_str();
  add_lsa_options(cmd, a->lsa);
  cmd->callback([a] { run_bench(*a); });
});

}  // namespace
}  // namespace flashmem::cli
