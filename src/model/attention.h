// Attention of one token's query heads over KV history given as spans of consecutive positions.
// The same code serves the contiguous cache (one span per layer) and paged KV (one span per
// resident page): the arithmetic per (head, key) depends only on the keys' order, never on where
// spans begin or end (the blocked kernel cuts its 8-key blocks at multiples of 8 of the key
// index, gathering rows across spans), so reading every page through spans is bit-identical to
// reading the contiguous cache.
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
// No position <= max_pos: out = 0.
// Cost: one pass reading this kv head's K and V slices once for all `group` heads, 8 keys per
// step with an online softmax (running max and sum), O(group · head_dim) scratch (O(group ·
// n_keys) only with probs). head_dim % 8 != 0 and builds without AVX2 run attend_kv_head_ref.
void attend_kv_head(const AttentionShape& shape, std::span<const KvSpan> spans, int64_t kv_head,
                    int64_t max_pos, const float* q, float* out, std::vector<float>& scores,
                    float* probs = nullptr);
// The scalar twin (tests compare against it): scores for every key, softmax, then V; same
// contract, `scores` grows to [group, n_keys].
void attend_kv_head_ref(const AttentionShape& shape, std::span<const KvSpan> spans,
                        int64_t kv_head, int64_t max_pos, const float* q, float* out,
                        std::vector<float>& scores, float* probs = nullptr);

// Number of positions <= max_pos that `spans` hold (the n_keys of attend_kv_head).
int64_t attended_keys(std::span<const KvSpan> spans, int64_t max_pos);

}  // namespace flashmem
