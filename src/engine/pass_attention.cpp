// Attention of one slice's rows over its sequence's KV spans (ForwardPass::attention): a prompt
// slice as (tile of tokens, kv head) items of the tiled prefill kernel (model/attention_prefill.h),
// a decode token (or probabilities wanted, or a windowed history) as (token, key chunk) items;
// see model/attention.h for the chunking that keeps every layout of spans bit-identical.
#include <algorithm>

#include "engine/forward_pass.h"
#include "util/error.h"

namespace flashmem {
namespace {

// The items [0, items) thread `part` of n_threads runs: begin, begin + step, ... < end.
struct ItemShare {
  int64_t begin, end, step;
};
// A decode step (one token) gives each thread one contiguous run of key chunks, so it streams its
// share of the history front to back and the hardware prefetcher follows one stream. Dealt
// round-robin, each thread jumped over the other's 256 KiB chunk at every chunk: at 16K context
// the decode step's attention read ~20-30 GB/s on 2 threads where two single-thread kernels at
// once read 40 (docs/BENCHMARKS.md, eleventh session, has the A/B). Several tokens stay
// round-robin, so both threads work on the chunk every token of the run reads while it is cached.
ItemShare share_items(int64_t items, int part, int64_t n_threads, bool one_token) {
  if (!one_token) return {part, items, n_threads};
  return {items * part / n_threads, items * (part + 1) / n_threads, 1};
}

}  // namespace

void ForwardPass::attention(const PassSlice& slice, int64_t layer) {
  const ModelConfig& c = model_.config();
  KvBackend& kv = slice.sequence->kv();
  const auto n = static_cast<int64_t>(slice.tokens.size());
  const int64_t pos0 = slice.sequence->n_past();
  // This slice's rows of the pass: q [n, Q], out [n, O] (O = n_heads * v_dim).
  const int64_t Q = c.q_dim(), O = c.attn_out_dim();
  const float* q_rows = &q_[slice.row0 * Q];
  float* out_rows = &attn_[slice.row0 * O];
  const AttentionShape shape{c.n_heads,
                             c.n_kv_heads,
                             c.head_dim,
                             kv.type(),
                             static_cast<float>(c.attn_scale),
                             static_cast<float>(c.attn_softcap),
                             c.layer_window[static_cast<size_t>(layer)],
                             c.v_dim};
  const std::span<const KvSpan> spans = kv.spans(layer);
  const int64_t stride = attention_partial_floats(shape), n_threads = pool_.size();
  // A windowed history (KvBackend::windowed_keys): positions [0, windowed) come window by
  // window, spans holds the rest. Every whole window's chunks are attended on their own; the
  // last window's are attended together with spans, since its last chunk may straddle both.
  const int64_t windowed = kv.windowed_keys();
  const int64_t window = windowed > 0 ? kv.window_keys() : 0;
  if (windowed > 0 && shape.window > 0)
    fail("sliding-window attention (layer {}) over a KV history streamed from disk is not supported",
         layer);
  if (windowed > 0 && (window <= 0 || window % kAttentionChunkKeys != 0))
    fail("KV windows of {} positions are not whole attention chunks of {}", window, kAttentionChunkKeys);
  const int64_t last_window = windowed > 0 ? (windowed - 1) / window * window : 0;  // its first key
  // The last window's spans followed by `spans` (just `spans` without a windowed history).
  auto rest_spans = [&]() -> std::span<const KvSpan> {
    if (windowed == 0) return spans;
    const std::span<const KvSpan> tail = kv.window(layer, last_window);
    rest_spans_.assign(tail.begin(), tail.end());
    rest_spans_.insert(rest_spans_.end(), spans.begin(), spans.end());
    return rest_spans_;
  };
  // Keys token i attends (its sliding window's, if any), and all the keys of its spans.
  auto keys_of = [&](int64_t i) {
    return windowed + attended_keys(spans, pos0 + i, first_attended_pos(shape, pos0 + i));
  };
  auto all_keys_of = [&](int64_t i) { return windowed + attended_keys(spans, pos0 + i); };
  // Optional probability side output: probs_ [n, n_heads, max_keys]; token i uses the first
  // n_heads * n_keys_i floats of its block as [n_heads, n_keys_i].
  AttentionObserver* observer = kv.attention_observer();
  if (observer != nullptr && windowed > 0) fail("attention probabilities of a windowed KV history");
  const int64_t max_keys = all_keys_of(n - 1);
  if (observer != nullptr) probs_.resize(static_cast<size_t>(n * c.n_heads * max_keys));
  auto probs_of = [&](int64_t i) -> float* {
    if (observer == nullptr || !observer->wants_attention(pos0 + i)) return nullptr;
    return &probs_[static_cast<size_t>(i * c.n_heads * max_keys)];
  };
  // A prompt slice (several tokens) goes through the tiled prefill kernel
  // (model/attention_prefill.h): each K and V row is read and converted once per tile of tokens
  // instead of once per token. Steps of keys in order (a windowed history's windows first, each
  // whole steps), items dealt round-robin within a step; an item's arithmetic does not depend on
  // the thread that runs it. With an observer the per-token chunks below also run, for the
  // probabilities only: the outputs stay the tiled kernel's, so observing changes no logit.
  auto attend_tiled = [&] {
    prefill_.plan(shape, spans, windowed, pos0, n, q_rows);
    const int64_t items = prefill_.n_items();
    auto run_steps = [&](int64_t first_step, int64_t end_step) {
      for (int64_t step = first_step; step < end_step; ++step)
        pool_.run([&](int part) {
          thread_local std::vector<float> scratch;  // per thread
          for (int64_t item = part; item < items; item += n_threads) prefill_.attend(item, step, scratch);
        });
    };
    for (int64_t key = 0; key < last_window; key += window) {
      prefill_.use_keys(kv.window(layer, key), key);
      run_steps(key / kPrefillStepKeys, (key + window) / kPrefillStepKeys);
    }
    prefill_.use_keys(rest_spans(), last_window);
    run_steps(last_window / kPrefillStepKeys, prefill_.n_steps());
    pool_.run([&](int part) {
      for (int64_t item = part; item < items; item += n_threads) prefill_.finish(item, out_rows);
    });
  };
  const bool tiled = n > 1;
  if (tiled && observer == nullptr) return attend_tiled();
  // Work items are (token, key chunk), all heads each (see kAttentionChunkKeys), in runs of
  // tokens whose chunk states fit kRunStateBytes, and within a run chunk by chunk: every token of
  // the run attends chunk c (its 256 K and V rows, 256 KiB for the 125M model, staying in L2)
  // before any attends chunk c + 1, so a prompt chunk reads the history from memory about once
  // per run instead of once per token. Items are dealt round-robin, so both threads work on the
  // same key chunk at a time; a run of one token (decode) is split into contiguous halves
  // instead (share_items). The order changes no bit: each item is computed alone and
  // attend_merge combines a token's chunks in chunk order.
  // 32 MiB of states: runs of 41 tokens at 64K context for the 125M model (12 heads x 66 floats
  // per chunk), 10 at 256K, so the history is read about 6x (at 64K) per 256-token prompt chunk
  // instead of 256x, while the states stay far below the KV they stream.
  constexpr int64_t kRunStateBytes = int64_t{32} << 20;
  const int64_t max_run_chunks = std::max<int64_t>(1, kRunStateBytes / (stride * static_cast<int64_t>(sizeof(float))));
  for (int64_t first = 0; first < n;) {
    chunk_first_.clear();  // [tokens of the run + 1] first chunk of each token, then the total
    int64_t last = first, total = 0;
    while (last < n) {
      const int64_t chunks = attention_chunks(keys_of(last));
      if (last > first && total + chunks > max_run_chunks) break;
      chunk_first_.push_back(total);
      total += chunks;
      ++last;
    }
    chunk_first_.push_back(total);
    partials_.resize(static_cast<size_t>(total * stride));
    // Chunks [lo, hi) of every token of the run from one whole window (every token attends all
    // of them), read from `from`, whose first key is key lo * kAttentionChunkKeys. Chunk by
    // chunk: the threads attend one chunk for every token while its K and V rows are in cache,
    // so the window comes from memory about once per run instead of once per token.
    // A run of one token (decode) indexes its keys once for all its chunks (see KeyIndex); a run
    // of several lets attend_chunk index them per item.
    auto index_if_one_token = [&](std::span<const KvSpan> from) {
      if (last - first == 1) index_keys(shape, from, pos0 + first, one_token_keys_);
    };
    auto chunk_of = [&](std::span<const KvSpan> from, int64_t i, int64_t c, float* partial, std::vector<float>& scratch,
                        float* probs, int64_t next) {
      if (last - first == 1) {
        attend_chunk(shape, from, one_token_keys_, c, &q_rows[i * Q], partial, scratch, probs, next);
      } else {
        attend_chunk(shape, from, pos0 + i, c, &q_rows[i * Q], partial, scratch, probs, next);
      }
    };
    auto attend_window = [&](std::span<const KvSpan> from, int64_t lo, int64_t hi) {
      const int64_t tokens = last - first, items = tokens * (hi - lo);
      index_if_one_token(from);
      pool_.run([&](int part) {
        thread_local std::vector<float> scratch;  // per thread
        const ItemShare share = share_items(items, part, n_threads, tokens == 1);
        for (int64_t item = share.begin; item < share.end; item += share.step) {
          const int64_t ti = item % tokens, chunk = lo + item / tokens, i = first + ti;
          chunk_of(from, i, chunk - lo, &partials_[static_cast<size_t>((chunk_first_[ti] + chunk) * stride)], scratch,
                   nullptr, -1);
        }
      });
    };
    // Every token's chunks from lo on, read from `from` (first key: key lo * kAttentionChunkKeys),
    // chunk by chunk (see the run comment above).
    auto attend_rest = [&](std::span<const KvSpan> from, int64_t lo) {
      run_items_.clear();  // (token of the run, chunk - lo) in chunk-major order
      int64_t max_chunks = 0;
      for (size_t ti = 0; ti + 1 < chunk_first_.size(); ++ti)
        max_chunks = std::max(max_chunks, chunk_first_[ti + 1] - chunk_first_[ti] - lo);
      for (int64_t c = 0; c < max_chunks; ++c)
        for (size_t ti = 0; ti + 1 < chunk_first_.size(); ++ti)
          if (c < chunk_first_[ti + 1] - chunk_first_[ti] - lo)
            run_items_.push_back({static_cast<int32_t>(ti), static_cast<int32_t>(c)});
      const auto items = static_cast<int64_t>(run_items_.size());
      index_if_one_token(from);
      pool_.run([&](int part) {
        thread_local std::vector<float> scratch;  // per thread
        const ItemShare share = share_items(items, part, n_threads, last - first == 1);
        for (int64_t item = share.begin; item < share.end; item += share.step) {
          const auto [ti, c] = run_items_[static_cast<size_t>(item)];
          const int64_t i = first + ti, chunk = lo + c;
          // This thread's next chunk, when it is another one, has its first rows prefetched.
          const int64_t after = item + share.step;
          const int64_t next = after < share.end ? run_items_[static_cast<size_t>(after)].second : c;
          chunk_of(from, i, c, &partials_[static_cast<size_t>((chunk_first_[static_cast<size_t>(ti)] + chunk) * stride)],
                   scratch, probs_of(i), next != c ? next : -1);
        }
      });
    };
    for (int64_t key = 0; key < last_window; key += window)
      attend_window(kv.window(layer, key), key / kAttentionChunkKeys,
                    (key + window) / kAttentionChunkKeys);
    attend_rest(rest_spans(), last_window / kAttentionChunkKeys);
    pool_.run([&](int part) {
      for (int64_t i = first + part; i < last; i += n_threads) {
        const size_t ti = static_cast<size_t>(i - first);
        attend_merge(shape, &partials_[static_cast<size_t>(chunk_first_[ti] * stride)],
                     chunk_first_[ti + 1] - chunk_first_[ti], &out_rows[i * O], probs_of(i), keys_of(i));
      }
    });
    first = last;
  }
  if (observer == nullptr) return;
  if (tiled) attend_tiled();
  for (int64_t i = 0; i < n; ++i)
    if (float* probs = probs_of(i); probs != nullptr) {
      // A sliding window attended the last keys_of(i) keys: the observer sees every key of the
      // spans, those before the window with probability 0. probs [n_heads, keys] becomes
      // [n_heads, all] in place, last head first (its rows only move forward).
      const int64_t keys = keys_of(i), all = all_keys_of(i), before = all - keys;
      for (int64_t h = c.n_heads - 1; before > 0 && h >= 0; --h) {
        std::copy_backward(probs + h * keys, probs + (h + 1) * keys, probs + (h + 1) * all);
        std::fill(probs + h * all, probs + h * all + before, 0.0f);
      }
      observer->observe_attention(layer, pos0 + i, probs, c.n_heads, all);
    }
}

}  // namespace flashmem
