#include "bench/bench_report.h"

#include <fmt/format.h>

#include "model/attention.h"
#include "model/model.h"
#include "tensor/kernels.h"

namespace flashmem::bench {
namespace {

// "median of N, range MIN-MAX" of a rate.
std::string spread_text(const Spread& s) {
  return s.n > 1 ? fmt::format("median of {}, range {:.1f}-{:.1f}", s.n, s.min, s.max)
                 : fmt::format("{} run", s.n);
}

nlohmann::json spread_json(const Spread& s) {
  return {{"median", s.median}, {"min", s.min}, {"max", s.max}, {"n", s.n}};
}

}  // namespace

nlohmann::json kv_settings_json(const BenchLabels& labels) {
  return {{"budget", labels.budget < 0 ? nlohmann::json() : nlohmann::json(labels.budget)},
          {"budget_tokens", labels.budget_tokens == 0 ? nlohmann::json() : nlohmann::json(labels.budget_tokens)},
          {"lsa_prefetch", labels.lsa_prefetch}};
}

std::string render_bench_text(const BenchResult& r, const BenchLabels& labels) {
  const BenchOptions& o = r.options;
  std::string out = fmt::format("model: {} ({}, {} layers, dim {}, {} weights), threads {}, kernels {} (KV fetched "
                                "into {})\n",
                                labels.model, r.arch, r.n_layers, r.dim, r.weight_type, r.threads, kernel_isa(),
                                attention_fetch_level());
  if (o.synthetic) {
    out += fmt::format("context: {:>6} tokens of synthetic KV (--fill random; prefill not measured)\n", o.context);
  } else {
    out += fmt::format("prefill: {:>6} tokens  {:8.1f} tok/s ({})\n", o.context, r.prefill_tok_s,
                       spread_text(r.prefill_spread));
    if (!o.checkpoint.empty())
      out += fmt::format("checkpoint '{}': resumed at {} tokens, rate over the {} prefilled here; {} written "
                         "({:.1f} s, not in the rate)\n",
                         o.checkpoint, r.prefill_resumed_from, o.context - r.prefill_resumed_from,
                         r.checkpoints_written, r.checkpoint_seconds);
  }
  out += fmt::format("decode:  {:>6} tokens  {:8.1f} tok/s ({})\n", o.gen, r.decode_tok_s,
                     spread_text(r.decode_spread));
  out += fmt::format("load average: {:.2f} at start, {:.2f} at end ({} runnable tasks at start)\n",
                     r.load_start.one_minute, r.load_end.one_minute, r.load_start.runnable);
  out += fmt::format("bytes per decode token: {:.1f} MB (weights {:.1f} MB + KV {:.2f} MB, kv {})\n",
                     r.bytes.total() / 1e6, r.bytes.weights / 1e6, r.bytes.kv / 1e6, labels.kv_type);
  out += fmt::format("weights memory: {}\n",
                     weight_memory_text(r.weights_copied, r.weights_huge_page_bytes,
                                        static_cast<double>(r.weights_file_bytes), r.thp_mode));
  out += fmt::format("memory read bandwidth: {:.1f} GB/s (best of {} passes, worst {:.1f}) -> floor {:.1f} tok/s\n",
                     r.bandwidth_gbs, r.bandwidth_passes, r.bandwidth_worst_gbs, r.floor_tok_s);
  out += fmt::format("floor ratio: {:.2f} (decode time per token / bandwidth floor)\n", r.floor_ratio);
  const ForwardTimes& t = r.decode_times;
  const double split_total = t.matmul + t.attention + t.other;
  out += fmt::format("decode time split: weights {:.0f}% ({:.1f} GB/s), attention {:.0f}% ({:.1f} GB/s), "
                     "other {:.0f}%\n",
                     100 * t.matmul / split_total, r.weights_gbs, 100 * t.attention / split_total,
                     r.attention_gbs, 100 * t.other / split_total);
  if (r.kv) {
    const LsaStats& kv = *r.kv;
    out += fmt::format("kv policy {} (store {}): resident avg {:.1f} MB / peak {:.1f} MB of {:.1f} MB full "
                       "({:.1f}%), attention reads {:.2f} MB/step, recalled {:.1f} MB, misses {}, "
                       "selection {:.2f} ms/cycle, recall wait {:.1f} ms\n",
                       r.kv_policy, labels.kv_store, kv.resident_kv_bytes_avg / 1e6,
                       kv.resident_kv_bytes_peak / 1e6, kv.full_kv_bytes / 1e6, 100 * kv.resident_fraction_avg,
                       kv.attn_bytes_per_step / 1e6, kv.recall_bytes_total / 1e6, kv.recall_misses,
                       kv.indexer_ms_per_cycle, kv.recall_wait_ms);
    if (kv.page_meta_bytes > 0)
      out += fmt::format("quest: key bounds {:.2f} MB resident, {} pages read synchronously (in misses), "
                         "{:.1f} MB of their layers (in recalled)\n",
                         kv.page_meta_bytes / 1e6, kv.sync_reads, kv.sync_read_bytes / 1e6);
    out += fmt::format("recall wait: first decode step {:.1f} ms, steady state {:.1f} ms; prefetched {} "
                       "pages, {} left to the boundary\n",
                       kv.recall_wait_first_ms, kv.recall_wait_ms - kv.recall_wait_first_ms,
                       kv.prefetched, kv.prefetch_dropped);
    if (kv.fallback_cycles > 0)
      out += fmt::format("lsa fallback: widened {} of {} cycles\n", kv.fallback_cycles, kv.cycles);
    if (r.oracle_replay) out += "oracle: masses from an untimed full-attention pass before each repeat\n";
  }
  out += fmt::format("peak RSS: {:.1f} MB", r.rss_peak_bytes / 1e6);
  if (!o.synthetic) out += fmt::format(" ({:.1f} MB at the end of the first prefill)", r.rss_peak_prefill_bytes / 1e6);
  out += "\n";
  return out;
}

nlohmann::json bench_to_json(const BenchResult& r, const BenchLabels& labels) {
  const BenchOptions& o = r.options;
  const auto gen = static_cast<double>(o.gen);
  nlohmann::json j = {
      {"model", labels.model},
      {"threads", r.threads},
      {"kernels", kernel_isa()},
      {"kv_prefetch", attention_fetch_level()},
      {"context", o.context},
      {"gen", o.gen},
      {"repeat", o.repeat},
      {"rounds", o.rounds},
      {"kv_type", labels.kv_type},
      {"weight_type", r.weight_type},
      {"prefill_tok_s", r.prefill_tok_s},
      {"decode_tok_s", r.decode_tok_s},
      {"prefill_spread", spread_json(r.prefill_spread)},
      {"decode_spread", spread_json(r.decode_spread)},
      {"load_avg_start", r.load_start.one_minute},
      {"load_avg_end", r.load_end.one_minute},
      {"bytes_per_token", r.bytes.total()},
      {"weight_bytes_per_token", r.bytes.weights},
      {"weights_memory", r.weights_copied ? "huge" : "map"},
      {"weights_huge_page_bytes", r.weights_huge_page_bytes},
      {"thp_mode", r.thp_mode},
      {"kv_bytes_per_token", r.bytes.kv},
      {"bandwidth_gbs", r.bandwidth_gbs},
      {"bandwidth_worst_gbs", r.bandwidth_worst_gbs},
      {"bandwidth_passes", r.bandwidth_passes},
      {"floor_tok_s", r.floor_tok_s},
      {"floor_ratio", r.floor_ratio},
      {"decode_ms_weights", 1e3 * r.decode_times.matmul / gen},
      {"decode_ms_attention", 1e3 * r.decode_times.attention / gen},
      {"decode_ms_other", 1e3 * r.decode_times.other / gen},
      {"weights_gbs", r.weights_gbs},
      {"attention_gbs", r.attention_gbs},
      {"fill", labels.fill},
      {"policy", labels.policy.empty() ? "none" : labels.policy},
      {"kv_store", labels.kv_store},
      {"rss_peak_bytes", r.rss_peak_bytes},
      {"rss_peak_prefill_bytes", r.rss_peak_prefill_bytes},
      {"decoded_digest", fmt::format("xxh3:{:016x}", r.decoded_digest)},
  };
  if (!labels.policy.empty()) j.update(kv_settings_json(labels));
  if (!o.checkpoint.empty())
    j.update({{"checkpoint", o.checkpoint},
              {"prefill_resumed_from", r.prefill_resumed_from},
              {"checkpoints_written", r.checkpoints_written},
              {"checkpoint_seconds", r.checkpoint_seconds}});
  if (r.kv) {
    const LsaStats& kv = *r.kv;
    j.update({
        {"resident_kv_bytes_avg", kv.resident_kv_bytes_avg},
        {"resident_kv_bytes_peak", kv.resident_kv_bytes_peak},
        {"full_kv_bytes", kv.full_kv_bytes},
        {"resident_fraction_avg", kv.resident_fraction_avg},
        {"attn_bytes_per_step", kv.attn_bytes_per_step},
        {"recall_bytes_total", kv.recall_bytes_total},
        {"recall_misses", kv.recall_misses},
        {"indexer_ms_per_cycle", kv.indexer_ms_per_cycle},
        {"recall_wait_ms", kv.recall_wait_ms},
        {"recall_wait_first_ms", kv.recall_wait_first_ms},
        {"prefetched", kv.prefetched},
        {"prefetch_dropped", kv.prefetch_dropped},
        {"cycles", kv.cycles},
        {"page_meta_bytes", kv.page_meta_bytes},
        {"sync_reads", kv.sync_reads},
        {"sync_read_bytes", kv.sync_read_bytes},
        {"fallback_cycles", kv.fallback_cycles},
    });
  }
  return j;
}

}  // namespace flashmem::bench
