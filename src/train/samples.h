// What one training/evaluation sample asks of the indexer (REFERENCE.md "Train"): the sample is a
// labeled decode token t; its candidates are the history chunks the runtime could drop, its
// positives the chunks golden for any token in t .. t + label_interval − 1 (the τ steps the
// selection made at t serves).
//
// Candidates exclude the always-resident chunks: the sink (chunks ending before sink_tokens) and
// the recency tail (chunks starting after pos − tail_tokens, which includes chunks not complete
// at t). The runtime keeps those whatever the indexer says, so they are neither trained on nor
// counted in recall (see README "Golden labels" for the measurement behind the defaults).
#pragma once
#include <cstdint>
#include <vector>

#include "kv/paged_defaults.h"
#include "train/dump_format.h"

namespace flashmem {

struct TargetOptions {
  int64_t label_interval = kDefaultTau;  // τ of the reference
  // The runtime's always-resident pages at its defaults: the sink page(s), and a tail that
  // always covers the last τ tokens.
  int64_t sink_tokens = kDefaultSinkPages * kDefaultPageTokens;
  int64_t tail_tokens = kDefaultTau;
};
void validate_target_options(const TargetOptions& options);

// Candidate chunks [lo, hi) of a token at `pos` (hi <= lo: none).
struct ChunkRange {
  int32_t lo = 0, hi = 0;
  int32_t size() const { return hi > lo ? hi - lo : 0; }
};
ChunkRange candidate_range(const DumpMeta& meta, int64_t pos, const TargetOptions& options);

// Positives of row `row`: the union of golden chunks over rows whose position is in
// [pos, pos + label_interval), restricted to candidate_range(pos); ascending, unique. `counts`
// (optional) receives, per positive, the number of those rows it is golden for: how many of the
// τ decode steps the selection made at `pos` serves actually need the chunk.
void sample_positives(const DumpDocument& doc, int64_t row, const TargetOptions& options,
                      std::vector<int32_t>& positives, std::vector<int32_t>* counts = nullptr);

// [n_chunks] 1 for chunks golden for more than `fraction` of the document's rows (the
// reference's "trivial" chunks, e.g. an attention sink), else 0.
std::vector<uint8_t> trivial_chunks(const DumpDocument& doc, double fraction);

}  // namespace flashmem
