// Golden labels from full attention (REFERENCE.md "Backbone-free training"): for a decode token,
// at every attention layer the chunks covering top_p of the layer's attention mass are selected;
// a chunk is golden if at least min_layers layers selected it, and its score is that count.
//
// The layer's chunk mass is reduced over heads in one of two ways:
//   mean: m_c = mean_h Σ_{t in c} p_h(t)   (the reference: the head-averaged distribution);
//   max:  m_c = max_h  Σ_{t in c} p_h(t), then normalised to sum 1 — a chunk that one head
//         attends strongly keeps that weight even when the other heads look elsewhere (DESIGN.md:
//         head-mean sets missed a retrieval head's evidence chunk 30% of the time).
#pragma once
#include <cstdint>
#include <string_view>
#include <vector>

namespace flashmem {

enum class HeadReduce { kMean, kMax };
HeadReduce parse_head_reduce(std::string_view name);  // "mean" | "max", else Error
std::string_view head_reduce_name(HeadReduce reduce);

struct LabelOptions {
  double top_p = 0.6;         // reference value
  int64_t min_layers = 3;     // reference value; the caller clips it to the layer count
  int64_t chunk_tokens = 4;
  HeadReduce reduce = HeadReduce::kMean;
  int64_t exclude_sink = 0;   // drop golden chunks lying inside the first exclude_sink tokens
  int64_t exclude_tail = 0;   // ... or inside the token's last exclude_tail positions
};

// chunk_mass[n_chunks] of one layer for one token from probs [n_heads, n_keys] over positions
// 0..n_keys-1; n_chunks = ceil(n_keys / chunk_tokens) (the token's own chunk may be partial).
void chunk_mass(const float* probs, int64_t n_heads, int64_t n_keys, int64_t chunk_tokens,
                HeadReduce reduce, std::vector<float>& mass);

// The smallest set of chunks, by decreasing mass (ties: lower id first), whose mass reaches
// top_p of the total; appended to `selected` in increasing id order.
void top_p_chunks(const std::vector<float>& mass, double top_p, std::vector<int32_t>& selected);

// Label-quality measurement (dump reports it): for every (token, layer, head) whose most-attended
// chunk holds more than half of the head's mass ("focused head"), whether that chunk made it into
// the layer's top-p set. head-mean sets can drop a single retrieval head's chunk.
struct LabelStats {
  int64_t tokens = 0;
  int64_t golden = 0;          // golden (token, chunk) pairs written
  int64_t golden_in_sink = 0;  // of those before exclusion: inside the first exclude-sink window
  int64_t golden_in_tail = 0;  //                           inside the recency window
  int64_t focused_heads = 0;
  int64_t focused_covered = 0;
  int64_t candidate_chunks = 0;  // Σ over tokens of the chunks the token could attend
};

// Accumulates, for the tokens of one batch, how many layers selected each chunk.
class LabelAccumulator {
 public:
  LabelAccumulator(const LabelOptions& options, int64_t n_label_layers);

  // probs [n_heads, n_keys] of one layer for the token at `pos` (n_keys = pos + 1).
  void add_layer(int64_t pos, const float* probs, int64_t n_heads, int64_t n_keys);
  // Golden chunks of `pos` (ascending) and their layer counts; forgets the token. `sink_window`
  // and `tail_window` (tokens) are only used for the statistics when nothing is excluded.
  void finish(int64_t pos, std::vector<int32_t>& indices, std::vector<int32_t>& scores,
              int64_t sink_window, int64_t tail_window);
  const LabelStats& stats() const { return stats_; }

 private:
  LabelOptions options_;
  int64_t min_layers_;
  std::vector<std::pair<int64_t, std::vector<int32_t>>> counts_;  // (pos, [n_chunks] layer counts)
  std::vector<float> mass_, head_mass_;
  std::vector<int32_t> selected_;
  LabelStats stats_;
};

}  // namespace flashmem
