#include "bench/sequences_bench.h"

#include <fmt/format.h>

#include <memory>
#include <random>
#include <span>

#include "model/sampler.h"
#include "util/error.h"
#include "util/timer.h"

namespace flashmem::bench {

SequencesBenchResult run_sequences_bench(Engine& engine, const SequenceOptions& sequence, int64_t sequences,
                                         const BenchOptions& o) {
  validate_bench_options(o);
  if (sequences < 1) fail("--sequences must be >= 1, got {}", sequences);
  const ModelConfig& c = engine.model().config();
  const auto N = static_cast<size_t>(sequences);
  SequencesBenchResult r;
  r.sequences = sequences;
  r.options = o;
  r.threads = engine.pool().size();

  std::vector<std::unique_ptr<Sequence>> seqs;
  for (size_t i = 0; i < N; ++i) seqs.push_back(std::make_unique<Sequence>(engine, sequence));
  if (o.context + o.gen * o.repeat > seqs.front()->capacity())
    fail("{} tokens of context + {} rounds of {} decoded tokens exceed the sequences' capacity of {}",
         o.context, o.repeat, o.gen, seqs.front()->capacity());
  r.kv_reserved_bytes = engine.kv_budget().reserved;

  // Prompts: seeded random ids above the special tokens, one seed per sequence (content does
  // not change the cost; distinct prompts keep the sequences' selections apart).
  std::vector<std::vector<int32_t>> prompts(N, std::vector<int32_t>(static_cast<size_t>(o.context)));  // [N][context]
  std::uniform_int_distribution<int32_t> pick(std::min<int32_t>(3, c.n_vocab - 1),
                                              static_cast<int32_t>(c.n_vocab - 1));
  for (size_t i = 0; i < N; ++i) {
    std::mt19937_64 rng(o.seed + i);
    for (int32_t& t : prompts[i]) t = pick(rng);
  }
  const auto V = static_cast<size_t>(c.n_vocab);
  std::vector<float> logits(N * V);  // [N, n_vocab] each sequence's last logits
  std::vector<BatchItem> batch(N);
  if (o.synthetic) {
    // The history is seeded random K/V: the decode cost at depth without the prefill.
    for (size_t i = 0; i < N; ++i) {
      seqs[i]->fill_synthetic(o.context - 1, o.seed + i);
      batch[i] = {seqs[i].get(), std::span(&prompts[i].back(), 1), &logits[i * V], false};
    }
    engine.decode(batch);
  } else {
    // All prompts in one decode(): passes of each sequence's next chunk, as a server prefills.
    for (size_t i = 0; i < N; ++i) batch[i] = {seqs[i].get(), prompts[i], &logits[i * V], false};
    const double t0 = now_seconds();
    engine.decode(batch);
    r.prefill_tok_s = static_cast<double>(sequences * o.context) / (now_seconds() - t0);
  }

  std::vector<int32_t> next(N);  // [N] each sequence's greedy token
  for (int round = 0; round < o.repeat; ++round) {
    const double t0 = now_seconds();
    for (int64_t step = 0; step < o.gen; ++step) {
      for (size_t i = 0; i < N; ++i) {
        next[i] = argmax(std::span(&logits[i * V], V));
        batch[i] = {seqs[i].get(), std::span(&next[i], 1), &logits[i * V], false};
      }
      engine.decode(batch);
    }
    r.decode_tok_s_rounds.push_back(static_cast<double>(sequences * o.gen) / (now_seconds() - t0));
  }
  r.decode_tok_s = median(r.decode_tok_s_rounds);
  r.decode_tok_s_per_sequence = r.decode_tok_s / static_cast<double>(sequences);
  r.rss_peak_bytes = peak_rss_bytes();
  return r;
}

std::string render_sequences_text(const SequencesBenchResult& r, const BenchLabels& labels) {
  const BenchOptions& o = r.options;
  std::string out = fmt::format("model: {}, {} sequences decoded together, threads {}, kv {}, policy {}\n",
                                labels.model, r.sequences, r.threads, labels.kv_type,
                                labels.policy.empty() ? "none (contiguous cache)" : labels.policy);
  if (o.synthetic) {
    out += fmt::format("context: {} tokens of synthetic KV per sequence (--fill random; prefill not measured)\n",
                       o.context);
  } else {
    out += fmt::format("prefill: {} x {} tokens, batched: {:.1f} tok/s\n", r.sequences, o.context, r.prefill_tok_s);
  }
  out += fmt::format("decode: {} rounds of {} steps x {} sequences: {:.1f} tok/s aggregate (median; rounds",
                     o.repeat, o.gen, r.sequences, r.decode_tok_s);
  for (double rate : r.decode_tok_s_rounds) out += fmt::format(" {:.1f}", rate);
  out += fmt::format("), {:.1f} tok/s per sequence\n", r.decode_tok_s_per_sequence);
  out += fmt::format("kv reserved: {:.1f} MB, peak RSS {:.1f} MB\n", r.kv_reserved_bytes / 1e6,
                     r.rss_peak_bytes / 1e6);
  return out;
}

nlohmann::json sequences_to_json(const SequencesBenchResult& r, const BenchLabels& labels) {
  const BenchOptions& o = r.options;
  nlohmann::json j = {{"model", labels.model},
          {"sequences", r.sequences},
          {"threads", r.threads},
          {"context", o.context},
          {"gen", o.gen},
          {"repeat", o.repeat},
          {"kv_type", labels.kv_type},
          {"fill", labels.fill},
          {"policy", labels.policy},
          {"kv_store", labels.kv_store},
          {"prefill_tok_s", r.prefill_tok_s},
          {"decode_tok_s", r.decode_tok_s},
          {"decode_tok_s_rounds", r.decode_tok_s_rounds},
          {"decode_tok_s_per_sequence", r.decode_tok_s_per_sequence},
          {"kv_reserved_bytes", r.kv_reserved_bytes},
          {"rss_peak_bytes", r.rss_peak_bytes}};
  if (!labels.policy.empty()) j.update(kv_settings_json(labels));
  return j;
}

}  // namespace flashmem::bench
