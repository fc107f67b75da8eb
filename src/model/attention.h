// Attention of one token's query heads over KV history given as spans of consecutive positions.
// The same code serves the contiguous cache (one span per layer) and paged KV (one span per
// resident page): the arithmetic per (head, key) depends only on the keys' order, never on where
// spans begin or end (see kAttentionChunkKeys), so reading every page through spans is
// bit-identical to reading the contiguous cache.
#pragma once
#include <cstdint>
#include <span>
#include <vector>

#include "tensor/dtype.h"

namespace flashmem {

// Positions [pos0, pos0 + n) of one layer: K and V rows of kv_dim elements, contiguous. V rows
// are laid out as K rows ([n_kv_heads, head_dim] per position; a kv head's value is the first
// v_dim of its slice); with MLA, v == k: the value is the first v_dim values of the key row.
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
  // F16, F32 or Q8_0 (then head_dim % 32 == 0: see check_kv_type). A q8_0 cache meets the query
  // quantized to q8_0 per 32 values (quantize_row), as llama.cpp's CPU flash attention does: a
  // score is Σ over blocks of the exact integer dot product of the codes times d_k · d_q.
  DType kv_type = DType::F16;
  // Score of a key: s = (q · k) · scale (0: 1/√head_dim), then cap · tanh(s / cap) when
  // softcap > 0 (Gemma 2's attention logit soft-capping).
  float scale = 0.0f;
  float softcap = 0.0f;
  // > 0: a token at max_pos attends only positions max_pos - window + 1 .. max_pos (a sliding
  // window); the keys are then those positions, numbered from 0 in span order.
  int64_t window = 0;
  // Values per kv head (0: head_dim): the first v_dim values of each head's slice of a V row.
  // Narrower than head_dim for MLA (deepseek2), whose key row is [latent, rope dims] and whose
  // value is the latent alone. Outputs and partial states hold v_dim values per query head.
  int64_t v_dim = 0;
};

inline int64_t value_dim(const AttentionShape& shape) {
  return shape.v_dim > 0 ? shape.v_dim : shape.head_dim;
}

// The first position a token at max_pos attends (0 without a window).
inline int64_t first_attended_pos(const AttentionShape& shape, int64_t max_pos) {
  return shape.window > 0 && max_pos - shape.window + 1 > 0 ? max_pos - shape.window + 1 : 0;
}

// Number of positions in [min_pos, max_pos] that `spans` hold: the keys one token attends,
// numbered 0 .. n_keys - 1 in span order (the key index).
int64_t attended_keys(std::span<const KvSpan> spans, int64_t max_pos, int64_t min_pos = 0);

// One token's keys are attended in chunks of kAttentionChunkKeys consecutive key indices (the last
// chunk shorter). A chunk is a work item for one thread: it reads every kv head's slice of its
// positions, i.e. whole K and V rows front to back (reading one kv head's slice per pass strides
// over the rows and measured 3-4x slower), and leaves a softmax state that attend_merge combines
// with the others in chunk order. Chunks and the kernel's 32-key blocks are cut at multiples of
// the key index, never at span boundaries, so the arithmetic per (head, key) depends only on the
// keys and their order: splitting the positions into spans, or the chunks among threads, changes
// no bit of the result. 256 keys keep both threads busy from 512 keys of context on while a
// chunk's K+V reads (256 KiB for the 125M model) dwarf its merge cost.
inline constexpr int64_t kAttentionChunkKeys = 256;
inline int64_t attention_chunks(int64_t n_keys) {
  return (n_keys + kAttentionChunkKeys - 1) / kAttentionChunkKeys;
}
// Floats of one chunk's state: per query head Σ_t exp(s_t - m) v_t [v_dim], m (the chunk's
// max score) and Σ_t exp(s_t - m).
inline int64_t attention_partial_floats(const AttentionShape& shape) {
  return shape.n_heads * (value_dim(shape) + 2);
}

// Where the keys one token at max_pos attends lie among `spans`: span s holds keys span_first[s]
// .. span_first[s + 1] - 1 (key indices as above; n_keys in all). Built once per token and set of
// spans in O(spans), it lets each chunk find its rows in O(log spans) instead of walking the spans
// before it (a paged history has one span per page: 1024 per layer at 64K).
struct KeyIndex {
  int64_t min_pos = 0, n_keys = 0;  // the token's first attended position; its keys in all
  std::vector<int64_t> span_first;  // [spans + 1]
};
void index_keys(const AttentionShape& shape, std::span<const KvSpan> spans, int64_t max_pos, KeyIndex& index);

// Chunk `chunk` of one token's attention, all query heads: q [n_heads, head_dim] (head h uses kv
// head h / group) attends to the chunk's keys among the positions of `spans` in
// [first_attended_pos(shape, max_pos), max_pos] (spans in increasing position order). partial:
// [n_heads, v_dim + 2], see attention_partial_floats.
// scores (nullptr = not wanted): [n_heads, n_keys]; receives the chunk's scaled scores q·k/√d at
// their key indices (attend_merge turns them into probabilities). scratch: resized as needed.
// next_chunk (-1 = none): the chunk the calling thread attends next (same spans); the first rows
// of its K are fetched into cache while this chunk finishes. A hint only: no result depends on it.
// Cost: reads the chunk's K rows, then its V rows, once each, all heads per block of keys;
// O(n_heads · kAttentionChunkKeys) scratch.
void attend_chunk(const AttentionShape& shape, std::span<const KvSpan> spans, int64_t max_pos,
                  int64_t chunk, const float* q, float* partial, std::vector<float>& scratch,
                  float* scores = nullptr, int64_t next_chunk = -1);
// The same with the token's keys indexed beforehand (index_keys(shape, spans, max_pos, index)):
// the form for many chunks of one token; the form above indexes the spans on every call.
void attend_chunk(const AttentionShape& shape, std::span<const KvSpan> spans, const KeyIndex& index,
                  int64_t chunk, const float* q, float* partial, std::vector<float>& scratch,
                  float* scores = nullptr, int64_t next_chunk = -1);

// Where the decode kernel fetches the K and V rows it reads next: "l1", "l2" (chosen per
// processor, FLASHMEM_KV_PREFETCH=l1|l2 overrides; see attention.cpp) or "none" (scalar builds).
const char* attention_fetch_level();

// out [n_heads, v_dim] = the softmax-weighted sum of V over all chunks, from their partial
// states [n_chunks, attention_partial_floats] (combined in chunk order; n_chunks = 0: out = 0).
// probs (nullptr = not wanted): [n_heads, n_keys] holding every chunk's scores on entry, the
// softmax probabilities on return; writing them does not change `out`.
void attend_merge(const AttentionShape& shape, const float* partials, int64_t n_chunks, float* out,
                  float* probs = nullptr, int64_t n_keys = 0);

// attend_chunk for every chunk, then attend_merge, on the calling thread. probs: as attend_merge,
// [n_heads, n_keys] with n_keys = attended_keys(spans, max_pos, first_attended_pos(shape, max_pos)).
void attend_token(const AttentionShape& shape, std::span<const KvSpan> spans, int64_t max_pos,
                  const float* q, float* out, std::vector<float>& scratch, float* probs = nullptr);

// The scalar twin (two passes, tests compare against it): for one token, the `group` query heads
// that share kv head `kv_head` attend to every position of `spans` the shape lets a token at
// max_pos attend (its window, scale and soft-cap included).
// q: [group, head_dim] (consecutive heads), out: [group, v_dim] (0 when no position is
// <= max_pos); scores: scratch, resized to [group, n_keys]. probs (nullptr = not wanted): receives
// the softmax probabilities [group, n_keys]; writing them does not change `out`.
void attend_kv_head_ref(const AttentionShape& shape, std::span<const KvSpan> spans,
                        int64_t kv_head, int64_t max_pos, const float* q, float* out,
                        std::vector<float>& scores, float* probs = nullptr);

}  // namespace flashmem
