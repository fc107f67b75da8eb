// Attention of one token's query heads over KV history given as spans of consecutive positions.
// The same code serves the contiguous cache (one span per layer) and paged KV (one span per
// resident page): the arithmetic per (head, key) is identical, so reading every page through
// spans is bit-identical to reading the contiguous cache.
#pragma once
#include <cstdint>
#include <span>
#include <vector>

#include "tensor/dtype.h"

namespace flashmem {

// Positions [pos0, pos0 + n) of one layer: K and V rows of kv_dim elements, contiguous.
struct KvSpan {
  int64_t pos0 = 0;
  int64_t n = 0;
  const uint8_t* k = nullptr;  // [n, kv_dim] in the cache type
  const uint8_t* v = nullptr;  // [n, kv_dim] in the cache type
};

struct AttentionShape {
  int64_t n_heads = 0;
  int64_t n_kv_heads = 0;
  int64_t head_dim = 0;
  DType kv_type = DType::F16;  // F16 or F32
};

// For one token: the `group` query heads that share kv head `kv_head` attend to every position
// <= max_pos found in `spans` (spans in increasing position order).
// q: [group, head_dim] (consecutive heads), out: [group, head_dim]; scores: scratch, resized.
// probs (optional, nullptr = not wanted): receives the softmax probabilities [group, n_keys],
// n_keys = the number of positions attended (in span order); writing them does not change `out`.
void attend_kv_head(const AttentionShape& shape, std::span<const KvSpan> spans, int64_t kv_head,
                    int64_t max_pos, const float* q, float* out, std::vector<float>& scores,
                    float* probs = nullptr);

// Number of positions <= max_pos that `spans` hold (the n_keys of attend_kv_head).
int64_t attended_keys(std::span<const KvSpan> spans, int64_t max_pos);

}  // namespace flashmem
