// Causal attention of a prompt slice (several consecutive query tokens) over KV spans, flash-
// attention style: a tile of query tokens, all query heads of one kv head, attends a block of
// keys together, so each K and V row is read and converted from the cache type once per tile
// instead of once per token (model/attention.h's attend_chunk serves one token; decode stays
// there).
//
// Arithmetic and its invariants. A tile's rows are (token, query head) pairs, one per SIMD lane.
// Keys are numbered by their index among all positions of the spans (the key index) and cut into
// blocks of kPrefillBlockKeys at multiples of that index. Per row, every block updates an
// online-softmax state (running max, sum, Σ exp(s - max) v) in key order, with the same lane-wise
// f32 operations whatever the other lanes hold; a block where the row attends no key leaves the
// state's bits unchanged. So a row's result depends only on its query, the keys and their order:
// not on where spans begin or end, which tokens share a tile, how the prompt is cut into slices,
// or which thread runs an item. It is not bit-identical to attend_chunk (different blocks and
// sum order); tests compare both with the scalar twin attend_kv_head_ref within rounding bounds.
#pragma once
#include <cstdint>
#include <span>
#include <vector>

#include "model/attention.h"

namespace flashmem {

// Keys per block: a block's K and V slices of one kv head as f32 (2 × 32 × head_dim floats,
// 16 KiB at head_dim 64) and its scores for a tile ([32, rows] floats, 6 KiB at AVX-512's 48
// rows) stay in L1 next to the tile's state.
inline constexpr int64_t kPrefillBlockKeys = 32;
// Keys per pass step: every item attends these keys before any attends the next ones, so the
// step's K and V rows (256 KiB for the 125M model at f16, 256 keys) are read from memory about
// once per step and served from L2 to the other tiles. kAttentionChunkKeys, for the same cache
// reason and because windows of a streamed history are whole chunks.
inline constexpr int64_t kPrefillStepKeys = kAttentionChunkKeys;
static_assert(kPrefillStepKeys % kPrefillBlockKeys == 0, "steps are whole blocks");

// One prompt slice's attention, planned once per (slice, layer) and run as work items over key
// steps: for step in [0, n_steps()), every item's attend(item, step) (any thread, any order
// within the step), then finish(item) for every item. Items are (tile of tokens, kv head) pairs;
// attend and finish of different items may run concurrently, of one item never.
class PrefillAttention {
 public:
  // Plans n tokens at positions pos0 .. pos0 + n - 1 whose queries are q [n, n_heads, head_dim].
  // Their keys: first `windowed` keys at positions 0 .. windowed - 1 (a history streamed window by
  // window, see KvBackend::windowed_keys; every token attends all of them, so no sliding window
  // then), then the positions of `spans` (in increasing position order, holding each token's own
  // position). A token at position p attends the keys at positions in
  // [first_attended_pos(shape, p), p]. The spans are the current keys (see use_keys). Keeps
  // pointers to q and to the current spans' K and V until the last finish(). Throws Error on a
  // shape the kernel cannot run (n_heads not a multiple of n_kv_heads, a q8_0 head_dim that is not
  // whole blocks, positions beyond int32, a sliding window over a windowed history).
  void plan(const AttentionShape& shape, std::span<const KvSpan> spans, int64_t windowed, int64_t pos0,
            int64_t n, const float* q);
  // The keys attend() reads from now on: the positions of `spans`, whose first is key first_key
  // (a multiple of kPrefillStepKeys). attend(item, step) needs the step's keys among them.
  void use_keys(std::span<const KvSpan> spans, int64_t first_key);

  int64_t n_items() const { return n_tiles_ * shape_.n_kv_heads; }
  // Steps of kPrefillStepKeys keys up to the last key any token attends.
  int64_t n_steps() const { return (n_keys_ + kPrefillStepKeys - 1) / kPrefillStepKeys; }

  // Item `item`'s rows attend the keys of step `step` that they attend (none: no work). scratch:
  // per thread, resized as needed. Runs the build's widest path: AVX-512 (16 rows per vector)
  // where it has AVX-512 F/BW/VL/DQ, else AVX2 (8), else attend_ref's scalar lanes.
  void attend(int64_t item, int64_t step, std::vector<float>& scratch);
  // The same algorithm with scalar lanes of attend's geometry (std::exp instead of the vector
  // exp): the twin tests compare against, and the path of builds without AVX2.
  void attend_ref(int64_t item, int64_t step, std::vector<float>& scratch);

  // Writes item `item`'s rows of out [n, n_heads, v_dim]: each row's Σ p v over every key it
  // attended (0 for a row that attended none).
  void finish(int64_t item, float* out) const;

 private:
  template <class Lanes>
  void attend_with(int64_t item, int64_t step, std::vector<float>& scratch);
  // Gathers keys [t0, t0 + nb) of kv head kvh as f32: kf [kb, head_dim], vf [kb, v_dim] and
  // pos [kb] (kb >= nb: the lane path's whole register blocks; the padding keys are 0 at
  // position -1, which no row attends). wide: [head_dim] scratch.
  void gather(int64_t t0, int64_t nb, int64_t kb, int64_t kvh, float* kf, float* vf, float* wide,
              int32_t* pos) const;
  int64_t span_of_key(int64_t t) const;

  AttentionShape shape_;
  std::vector<KvSpan> spans_;
  std::vector<int64_t> span_first_key_;  // [spans + 1] key index of each current span's first position, then their end
  int64_t group_ = 0, hd_ = 0, vd_ = 0, n_keys_ = 0, n_tokens_ = 0;
  int64_t tile_tokens_ = 0, n_tiles_ = 0, rows_ = 0;  // rows_: lanes per item, whole vectors
  float scale_ = 0.0f;
  // Per item (tile-major, kv head minor), rows r = token of the tile * group + query head of the
  // group; padding rows attend nothing.
  std::vector<float> qt_;          // [items, head_dim, rows_] the rows' queries, transposed
  std::vector<float> ot_;          // [items, v_dim, rows_] Σ exp(s - max) v, transposed
  std::vector<float> max_, sum_;   // [items, rows_] running max score, Σ exp(s - max)
  std::vector<int32_t> lo_, hi_;   // [items, rows_] first and last position each row attends
  std::vector<int64_t> key_lo_, key_hi_;  // [items] key index range any of the item's rows attends
};

}  // namespace flashmem
