// `flashmem bench --sequences N`: aggregate decode throughput of N sequences decoded together by
// one Engine (every step one batch of N single tokens: the weights are read once per step for
// all of them, attention runs per sequence over its own KV).
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "bench/bench_report.h"
#include "bench/bench_run.h"
#include "flashmem/engine.h"

namespace flashmem::bench {

struct SequencesBenchResult {
  int64_t sequences = 0;
  BenchOptions options;
  int threads = 0;
  double prefill_tok_s = 0;  // all prompts' tokens over the batched prefill's time; 0 if synthetic
  // Decode: after one history per sequence, `repeat` rounds of `gen` steps of all sequences,
  // one after the other (round r decodes at depth context + r·gen).
  std::vector<double> decode_tok_s_rounds;  // [repeat] aggregate tokens/s of each round
  double decode_tok_s = 0;                  // median of the rounds (all sequences together)
  double decode_tok_s_per_sequence = 0;     // decode_tok_s / sequences
  uint64_t kv_reserved_bytes = 0;           // resident KV cells the sequences reserve
  double rss_peak_bytes = 0;                // VmHWM at the end (0 if unknown)
};

// Throws Error when sequences < 1 or the options are invalid (validate_bench_options). Each
// sequence's prompt is seeded random ids (seed + its index); with o.synthetic its history is a
// seeded synthetic fill instead, labelled as such in the reports.
SequencesBenchResult run_sequences_bench(Engine& engine, const SequenceOptions& sequence, int64_t sequences,
                                         const BenchOptions& o);

std::string render_sequences_text(const SequencesBenchResult& r, const BenchLabels& labels);
nlohmann::json sequences_to_json(const SequencesBenchResult& r, const BenchLabels& labels);

}  // namespace flashmem::bench
