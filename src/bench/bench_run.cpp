#include "bench/bench_run.h"

#include <algorithm>
#include <cstdio>
#include <random>
#include <span>

#include "model/model.h"
#include "model/sampler.h"
#include "util/bandwidth.h"
#include "util/error.h"
#include "util/process_memory.h"
#include "util/timer.h"

namespace flashmem::bench {

void validate_bench_options(const BenchOptions& o) {
  if (o.context < 1 || o.gen < 1 || o.repeat < 1) fail("--context, --gen and --repeat must be >= 1");
}

double peak_rss_bytes() { return proc_status_bytes("VmHWM"); }

double median(std::vector<double> v) {
  if (v.empty()) return 0;
  std::sort(v.begin(), v.end());
  const size_t m = v.size() / 2;
  return v.size() % 2 ? v[m] : 0.5 * (v[m - 1] + v[m]);
}

BenchResult run_bench(const Model& model, Session& timed, Session* recorder, const BenchOptions& o) {
  validate_bench_options(o);
  const ModelConfig& c = model.config();
  BenchResult r;
  r.options = o;
  r.arch = c.arch->name;
  r.n_layers = c.n_layers;
  r.dim = c.dim;
  r.weight_type = dtype_info(model.main_weight_type()).name;
  r.oracle_replay = recorder != nullptr;

  // The prompt: seeded random ids above the special tokens (content does not change the cost).
  std::mt19937_64 rng(o.seed);
  std::uniform_int_distribution<int32_t> pick(std::min<int32_t>(3, c.n_vocab - 1),
                                              static_cast<int32_t>(c.n_vocab - 1));
  std::vector<int32_t> prompt(static_cast<size_t>(o.context));  // [context]
  for (int32_t& t : prompt) t = pick(rng);

  std::vector<float> logits(static_cast<size_t>(c.n_vocab));  // [n_vocab]
  std::vector<double> prefill_rates, decode_rates;
  // One sequence: history (prefill or synthetic), then `gen` decode steps, greedy or replaying
  // `forced`; the decoded tokens go to `decoded`. Returns the decode rate.
  auto run_sequence = [&](Session& s, int repeat, const std::vector<int32_t>* forced,
                          std::vector<int32_t>* decoded) {
    s.reset();
    double t0 = now_seconds();
    int32_t token = prompt.back();
    if (o.synthetic) {
      // The history holds seeded random K/V (and indexer keys): decode cost at depth without
      // the hour a real long prefill takes on 2 cores. Prefill speed is not measured.
      s.fill_synthetic(o.context - 1, o.seed + static_cast<uint64_t>(repeat));
      s.forward(std::span(&token, 1), logits.data(), false);
    } else {
      s.forward(prompt, logits.data(), false);
      if (&s == &timed) prefill_rates.push_back(static_cast<double>(o.context) / (now_seconds() - t0));
      if (&s == &timed && r.rss_peak_prefill_bytes == 0) r.rss_peak_prefill_bytes = peak_rss_bytes();
    }
    token = argmax(logits);
    s.reset_times();
    t0 = now_seconds();
    for (int64_t i = 0; i < o.gen; ++i) {
      if (forced != nullptr) token = (*forced)[static_cast<size_t>(i)];
      if (decoded != nullptr) decoded->push_back(token);
      const int32_t in[1] = {token};
      s.forward(in, logits.data(), false);
      token = argmax(logits);
    }
    return static_cast<double>(o.gen) / (now_seconds() - t0);
  };
  for (int rep = 0; rep < o.repeat; ++rep) {
    std::vector<int32_t> recorded;  // [gen] the recorder's tokens
    if (recorder != nullptr) run_sequence(*recorder, rep, nullptr, &recorded);
    decode_rates.push_back(run_sequence(timed, rep, recorder != nullptr ? &recorded : nullptr, nullptr));
    r.decode_times = timed.times();
  }
  r.prefill_tok_s = o.synthetic ? 0.0 : median(prefill_rates);
  r.decode_tok_s = median(decode_rates);

  // Bytes one decode step reads: all weights + the K and V attention reads (every position so
  // far, or what the runtime measured it read).
  const PagedKv* paged = timed.paged();
  if (paged != nullptr) {
    r.kv = paged->stats();
    r.kv_policy = paged->policy().name();
  }
  r.bytes.weights = static_cast<double>(model.decode_weight_bytes());
  r.bytes.kv = paged != nullptr ? static_cast<double>(r.kv->attn_bytes_per_step)
                                : full_attention_kv_bytes(c, timed.kv().type(), o.context, o.gen);
  // Peak RSS of the model and its KV, read before the bandwidth probe's buffer joins it.
  r.rss_peak_bytes = peak_rss_bytes();
  r.threads = timed.pool().size();
  r.bandwidth_gbs = measure_read_bandwidth_gbs(timed.pool());
  r.floor_tok_s = bandwidth_floor_tok_s(r.bandwidth_gbs, r.bytes.total());
  r.floor_ratio = r.floor_tok_s / r.decode_tok_s;
  // Read rate of each part: its bytes per token over its time per token. Against bandwidth_gbs
  // this shows which part is short of the memory bus (0 when a part took no measurable time).
  auto rate_gbs = [&](double bytes, double seconds) {
    return seconds > 0 ? bytes * static_cast<double>(o.gen) / seconds / 1e9 : 0.0;
  };
  r.weights_gbs = rate_gbs(r.bytes.weights, r.decode_times.matmul);
  r.attention_gbs = rate_gbs(r.bytes.kv, r.decode_times.attention);
  return r;
}

}  // namespace flashmem::bench
