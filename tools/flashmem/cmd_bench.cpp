// `flashmem bench`: prefill and decode speed, bytes read per decode token, and how close decode
// comes to the memory-bandwidth floor.
#include <fmt/format.h>

#include <algorithm>
#include <nlohmann/json.hpp>
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
};

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
  options.n_ctx = a.context + a.gen;
  options.kv_type = parse_kv_type(a.kv_type);
  options.n_threads = a.threads;
  Session session(model, options);

  // The prompt: seeded random ids above the special tokens (content does not change the cost).
  std::mt19937_64 rng(a.seed);
  std::uniform_int_distribution<int32_t> pick(std::min<int32_t>(3, c.n_vocab - 1),
                                              static_cast<int32_t>(c.n_vocab - 1));
  std::vector<int32_t> prompt(static_cast<size_t>(a.context));
  for (int32_t& t : prompt) t = pick(rng);

  std::vector<float> logits(static_cast<size_t>(c.n_vocab));
  std::vector<double> prefill_rates, decode_rates;
  ForwardTimes decode_times;  // of the last repeat
  for (int r = 0; r < a.repeat; ++r) {
    session.reset();
    double t0 = now_seconds();
    session.forward(prompt, logits.data(), false);
    prefill_rates.push_back(static_cast<double>(a.context) / (now_seconds() - t0));
    int32_t token = argmax(logits);
    session.reset_times();
    t0 = now_seconds();
    for (int64_t i = 0; i < a.gen; ++i) {
      const int32_t in[1] = {token};
      session.forward(in, logits.data(), false);
      token = argmax(logits);
    }
    decode_rates.push_back(static_cast<double>(a.gen) / (now_seconds() - t0));
    decode_times = session.times();
  }
  const double prefill_tok_s = median(prefill_rates), decode_tok_s = median(decode_rates);

  // Bytes one decode step reads: all weights + K and V of every position so far, every layer.
  const double kv_row = static_cast<double>(row_bytes(session.kv().type(), c.kv_dim()));
  const double avg_keys = static_cast<double>(a.context) + static_cast<double>(a.gen + 1) / 2.0;
  const double kv_bytes = 2.0 * static_cast<double>(c.n_layers) * avg_keys * kv_row;
  const double weight_bytes = static_cast<double>(model->decode_weight_bytes());
  const double bytes_per_token = weight_bytes + kv_bytes;
  const double bandwidth_gbs = measure_read_bandwidth_gbs(session.pool());
  const double floor_tok_s = bandwidth_gbs * 1e9 / bytes_per_token;
  const double floor_ratio = floor_tok_s / decode_tok_s;

  fmt::print("model: {} ({}, {} layers, dim {}, {} weights), threads {}\n", a.model, c.arch->name,
             c.n_layers, c.dim, dtype_info(model->main_weight_type()).name, session.pool().size());
  fmt::print("prefill: {:>6} tokens  {:8.1f} tok/s (median of {})\n", a.context, prefill_tok_s, a.repeat);
  fmt::print("decode:  {:>6} tokens  {:8.1f} tok/s (median of {})\n", a.gen, decode_tok_s, a.repeat);
  fmt::print("bytes per decode token: {:.1f} MB (weights {:.1f} MB + KV {:.2f} MB, kv {})\n",
             bytes_per_token / 1e6, weight_bytes / 1e6, kv_bytes / 1e6, a.kv_type);
  fmt::print("memory read bandwidth: {:.1f} GB/s (measured) -> floor {:.1f} tok/s\n", bandwidth_gbs,
             floor_tok_s);
  fmt::print("floor ratio: {:.2f} (decode time per token / bandwidth floor)\n", floor_ratio);
  const double split_total = decode_times.matmul + decode_times.attention + decode_times.other;
  fmt::print("decode time split: weights {:.0f}%, attention {:.0f}%, other {:.0f}%\n",
             100 * decode_times.matmul / split_total, 100 * decode_times.attention / split_total,
             100 * decode_times.other / split_total);
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
    };
    fmt::print("{}\n", j.dump());
  }
}

const CommandRegistration kBench("bench", [](CLI::App& app) {
  auto* cmd = app.add_subcommand("bench", "Measure prefill/decode speed against the bandwidth floor");
  auto a = std::make_shared<BenchArgs>();
  cmd->add_option("-m,--model", a->model, "GGUF model")->required();
  cmd->add_option("--context", a->context, "prompt length in tokens")->capture_default_str();
  cmd->add_option("--gen", a->gen, "decoded tokens")->capture_default_str();
  cmd->add_option("-t,--threads", a->threads, "threads (default: all cores)");
  cmd->add_option("--repeat", a->repeat, "repeats (the median is reported)")->capture_default_str();
  cmd->add_option("--kv-type", a->kv_type, "f16 | f32")->capture_default_str();
  cmd->add_option("--seed", a->seed, "seed of the random prompt")->capture_default_str();
  cmd->add_flag("--json", a->json, "print one JSON object on the last line");
  cmd->callback([a] { run_bench(*a); });
});

}  // namespace
}  // namespace flashmem::cli
