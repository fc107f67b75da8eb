#include "model/session.h"

#include <algorithm>
#include <cmath>
#include <cstring>

#include "model/attention.h"
#include "tensor/kernels.h"
#include "tensor/rope.h"
#include "util/error.h"
#include "util/timer.h"

namespace flashmem {
namespace {

void silu_mul(float* gate, const float* up, int64_t n) {
  for (int64_t i = 0; i < n; ++i) gate[i] = gate[i] / (1.0f + std::exp(-gate[i])) * up[i];
}

}  // namespace

Session::Session(std::shared_ptr<const Model> model, const SessionOptions& options)
    : Session(model, options,
              std::make_unique<ContiguousKv>(
                  model->config().n_layers,
                  options.n_ctx > 0 ? options.n_ctx : model->config().context_length,
                  model->config().kv_dim(), options.kv_type)) {}

Session::Session(std::shared_ptr<const Model> model, const SessionOptions& options,
                 std::unique_ptr<KvBackend> kv)
    : model_(std::move(model)),
      options_(options),
      pool_(options.n_threads > 0 ? options.n_threads : ThreadPool::default_threads()),
      kv_(std::move(kv)) {
  const ModelConfig& c = model_->config();
  if (options_.max_batch < 1) fail("max_batch must be >= 1");
  check_kv_type(kv_->type(), c.head_dim);
  rope_freqs_ = rope_frequencies(c.rope_base, c.rope_dim);
  rope_cos_.resize(rope_freqs_.size());
  rope_sin_.resize(rope_freqs_.size());
  const auto B = static_cast<size_t>(std::min(options_.max_batch, kv_->capacity()));
  x_.resize(B * c.dim);
  xn_.resize(B * c.dim);
  q_.resize(B * c.q_dim());
  k_.resize(B * c.kv_dim());
  v_.resize(B * c.kv_dim());
  attn_.resize(B * c.q_dim());
  gate_.resize(B * c.ff_dim);
  up_.resize(B * c.ff_dim);
  proj_.resize(B * c.dim);
}

void Session::forward(std::span<const int32_t> tokens, float* logits, bool all_logits) {
  const ModelConfig& c = model_->config();
  if (tokens.empty()) return;
  if (n_past_ + static_cast<int64_t>(tokens.size()) > kv_->capacity())
    fail("{} tokens at position {} exceed the context capacity of {}", tokens.size(), n_past_,
         kv_->capacity());
  for (int32_t t : tokens)
    if (t < 0 || t >= c.n_vocab) fail("token id {} is outside the vocabulary [0, {})", t, c.n_vocab);
  const int64_t batch = std::min<int64_t>(options_.max_batch, kv_->capacity());
  // The end of a prompt (a multi-token call, or the first call of a sequence) is where the
  // selection machinery first runs.
  const bool is_prompt = tokens.size() > 1 || n_past_ == 0;
  for (size_t start = 0; start < tokens.size();) {
    const auto left = static_cast<int64_t>(tokens.size() - start);
    const auto n = static_cast<size_t>(std::min(batch, left));
    const bool last = start + n == tokens.size();
    float* out = nullptr;
    if (logits != nullptr && all_logits) out = logits + start * c.n_vocab;
    if (logits != nullptr && !all_logits && last) out = logits;
    forward_batch(tokens.subspan(start, n), out, all_logits, last && is_prompt);
    start += n;
  }
}

void Session::linear(const Matrix& m, const float* x, float* y, int64_t n) {
  const double t0 = now_seconds();
  if (n == 1) {
    matvec(m.type, m.data, x, y, m.rows, m.cols, &pool_);
  } else {
    matmul(m.type, m.data, x, y, n, m.rows, m.cols, &pool_);
  }
  times_.matmul += now_seconds() - t0;
}

void Session::forward_batch(std::span<const int32_t> tokens, float* logits, bool all_logits,
                            bool is_prompt_end) {
  const ModelConfig& c = model_->config();
  const ModelWeights& w = model_->weights();
  const auto n = static_cast<int64_t>(tokens.size());
  const int64_t D = c.dim, Q = c.q_dim(), KV = c.kv_dim(), F = c.ff_dim, hd = c.head_dim;
  const float eps = static_cast<float>(c.rms_eps);
  const int64_t pos0 = n_past_;

  double t0 = now_seconds();
  const size_t embd_row = row_bytes(w.token_embd.type, D);
  for (int64_t i = 0; i < n; ++i)
    dequantize_row(w.token_embd.type,
                   static_cast<const uint8_t*>(w.token_embd.data) + embd_row * tokens[i],
                   &x_[i * D], D);
  times_.other += now_seconds() - t0;

  kv_->begin_batch(pos0, n);
  const std::vector<int64_t>& observed = kv_->observed_layers();
  for (int64_t il = 0; il < c.n_layers; ++il) {
    const LayerWeights& l = w.layers[static_cast<size_t>(il)];
    if (std::find(observed.begin(), observed.end(), il) != observed.end())
      for (int64_t i = 0; i < n; ++i) kv_->observe_hidden(il, pos0 + i, &x_[i * D]);
    // ---- attention block: x += Wo · attn(RoPE(Wq·n(x)), RoPE(Wk·n(x)), Wv·n(x))
    t0 = now_seconds();
    for (int64_t i = 0; i < n; ++i) rms_norm(&x_[i * D], l.attn_norm, &xn_[i * D], D, eps);
    times_.other += now_seconds() - t0;
    linear(l.wq, xn_.data(), q_.data(), n);
    linear(l.wk, xn_.data(), k_.data(), n);
    linear(l.wv, xn_.data(), v_.data(), n);
    t0 = now_seconds();
    for (int64_t i = 0; i < n; ++i) {
      float* q = &q_[i * Q];
      float* k = &k_[i * KV];
      float* v = &v_[i * KV];
      if (l.bq != nullptr) {
        for (int64_t j = 0; j < Q; ++j) q[j] += l.bq[j];
        for (int64_t j = 0; j < KV; ++j) k[j] += l.bk[j];
        for (int64_t j = 0; j < KV; ++j) v[j] += l.bv[j];
      }
      // One position's angles serve every head of q and k (each head's first rope_dim dims).
      rope_angles(rope_freqs_, pos0 + i, rope_cos_.data(), rope_sin_.data());
      for (int64_t h = 0; h < c.n_heads; ++h)
        rope_rotate(q + h * hd, c.rope_dim, c.arch->rope_style, rope_cos_.data(), rope_sin_.data());
      for (int64_t h = 0; h < c.n_kv_heads; ++h)
        rope_rotate(k + h * hd, c.rope_dim, c.arch->rope_style, rope_cos_.data(), rope_sin_.data());
      kv_->store(il, pos0 + i, k, v);
    }
    times_.other += now_seconds() - t0;
    t0 = now_seconds();
    if (kv_->wants_queries()) kv_->observe_queries(il, q_.data(), n);
    attention(il, n, pos0);
    times_.attention += now_seconds() - t0;
    linear(l.wo, attn_.data(), proj_.data(), n);
    for (int64_t j = 0; j < n * D; ++j) x_[j] += proj_[j];

    // ---- feed-forward block: x += W_down · (silu(W_gate·n(x)) ⊙ W_up·n(x))
    t0 = now_seconds();
    for (int64_t i = 0; i < n; ++i) rms_norm(&x_[i * D], l.ffn_norm, &xn_[i * D], D, eps);
    times_.other += now_seconds() - t0;
    linear(l.w_gate, xn_.data(), gate_.data(), n);
    linear(l.w_up, xn_.data(), up_.data(), n);
    t0 = now_seconds();
    silu_mul(gate_.data(), up_.data(), n * F);
    times_.other += now_seconds() - t0;
    linear(l.w_down, gate_.data(), proj_.data(), n);
    for (int64_t j = 0; j < n * D; ++j) x_[j] += proj_[j];
  }
  n_past_ += n;
  kv_->end_batch(is_prompt_end);

  if (logits == nullptr) return;
  // Output head only for the rows the caller wants.
  const int64_t first = all_logits ? 0 : n - 1;
  const int64_t rows = n - first;
  for (int64_t i = first; i < n; ++i) rms_norm(&x_[i * D], w.output_norm, &xn_[i * D], D, eps);
  linear(w.output, &xn_[first * D], logits, rows);
}

void Session::attention(int64_t layer, int64_t n, int64_t pos0) {
  const ModelConfig& c = model_->config();
  const int64_t Q = c.q_dim();
  const AttentionShape shape{c.n_heads, c.n_kv_heads, c.head_dim, kv_->type()};
  const std::span<const KvSpan> spans = kv_->spans(layer);
  const int64_t stride = attention_partial_floats(shape), n_threads = pool_.size();
  // A windowed history (KvBackend::windowed_keys): positions [0, windowed) come window by
  // window, spans holds the rest. Every whole window's chunks are attended on their own; the
  // last window's are attended together with spans, since its last chunk may straddle both.
  const int64_t windowed = kv_->windowed_keys();
  const int64_t window = windowed > 0 ? kv_->window_keys() : 0;
  if (windowed > 0 && (window <= 0 || window % kAttentionChunkKeys != 0))
    fail("KV windows of {} positions are not whole attention chunks of {}", window, kAttentionChunkKeys);
  const int64_t last_window = windowed > 0 ? (windowed - 1) / window * window : 0;  // its first key
  auto keys_of = [&](int64_t i) { return windowed + attended_keys(spans, pos0 + i); };
  // Optional probability side output: probs_ [n, n_heads, max_keys]; token i uses the first
  // n_heads * n_keys_i floats of its block as [n_heads, n_keys_i].
  AttentionObserver* observer = kv_->attention_observer();
  if (observer != nullptr && windowed > 0) fail("attention probabilities of a windowed KV history");
  const int64_t max_keys = keys_of(n - 1);
  if (observer != nullptr) probs_.resize(static_cast<size_t>(n * c.n_heads * max_keys));
  auto probs_of = [&](int64_t i) -> float* {
    if (observer == nullptr || !observer->wants_attention(pos0 + i)) return nullptr;
    return &probs_[static_cast<size_t>(i * c.n_heads * max_keys)];
  };
  // Work items are (token, key chunk), all heads each (see kAttentionChunkKeys), dealt
  // round-robin: neighbouring chunks run at the same time, and later tokens' extra chunks
  // spread over the threads. Tokens go in runs of at most kMaxChunksPerRun chunks, which bounds
  // the partial states kept (1024 · 12 heads · 66 floats = 3.2 MB for the 125M model). A
  // windowed history is read again for every run, so its runs are bounded by bytes instead:
  // 16 MiB of states are runs of about 80 tokens at 16K context for the 125M model, so the
  // history is read once per 80 tokens that attend it, and stay far below the KV they stream.
  constexpr int64_t kMaxChunksPerRun = 1024;
  constexpr int64_t kWindowedRunBytes = int64_t{16} << 20;
  const int64_t max_run_chunks =
      windowed > 0 ? std::max<int64_t>(kMaxChunksPerRun, kWindowedRunBytes / (stride * 4))
                   : kMaxChunksPerRun;
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
    auto attend_window = [&](std::span<const KvSpan> from, int64_t lo, int64_t hi) {
      const int64_t tokens = last - first, items = tokens * (hi - lo);
      pool_.run([&](int part) {
        thread_local std::vector<float> scratch;  // per thread
        for (int64_t item = part; item < items; item += n_threads) {
          const int64_t ti = item % tokens, chunk = lo + item / tokens, i = first + ti;
          attend_chunk(shape, from, pos0 + i, chunk - lo, &q_[i * Q],
                       &partials_[static_cast<size_t>((chunk_first_[ti] + chunk) * stride)], scratch);
        }
      });
    };
    // Every token's chunks from lo on, read from `from` (first key: key lo * kAttentionChunkKeys),
    // token by token.
    auto attend_rest = [&](std::span<const KvSpan> from, int64_t lo) {
      range_first_.clear();  // [tokens of the run + 1] first item of each token, then the total
      int64_t items = 0;
      for (size_t ti = 0; ti + 1 < chunk_first_.size(); ++ti) {
        range_first_.push_back(items);
        items += chunk_first_[ti + 1] - chunk_first_[ti] - lo;
      }
      range_first_.push_back(items);
      pool_.run([&](int part) {
        thread_local std::vector<float> scratch;  // per thread
        size_t ti = 0;                            // token of `item` within the run
        for (int64_t item = part; item < items; item += n_threads) {
          while (range_first_[ti + 1] <= item) ++ti;
          const int64_t i = first + static_cast<int64_t>(ti);
          const int64_t chunk = lo + item - range_first_[ti];
          attend_chunk(shape, from, pos0 + i, chunk - lo, &q_[i * Q],
                       &partials_[static_cast<size_t>((chunk_first_[ti] + chunk) * stride)], scratch,
                       probs_of(i));
        }
      });
    };
    for (int64_t key = 0; key < last_window; key += window)
      attend_window(kv_->window(layer, key), key / kAttentionChunkKeys,
                    (key + window) / kAttentionChunkKeys);
    std::span<const KvSpan> rest = spans;
    if (windowed > 0) {
      const std::span<const KvSpan> tail = kv_->window(layer, last_window);
      rest_spans_.assign(tail.begin(), tail.end());
      rest_spans_.insert(rest_spans_.end(), spans.begin(), spans.end());
      rest = rest_spans_;
    }
    attend_rest(rest, last_window / kAttentionChunkKeys);
    pool_.run([&](int part) {
      for (int64_t i = first + part; i < last; i += n_threads) {
        const size_t ti = static_cast<size_t>(i - first);
        attend_merge(shape, &partials_[static_cast<size_t>(chunk_first_[ti] * stride)],
                     chunk_first_[ti + 1] - chunk_first_[ti], &attn_[i * Q], probs_of(i), keys_of(i));
      }
    });
    first = last;
  }
  if (observer == nullptr) return;
  for (int64_t i = 0; i < n; ++i)
    if (float* probs = probs_of(i); probs != nullptr)
      observer->observe_attention(layer, pos0 + i, probs, c.n_heads, keys_of(i));
}

}  // namespace flashmem
