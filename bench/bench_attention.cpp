// Decode attention of one token over a contiguous KV history, the 125M benchmark model's shape
// (12 query heads, 4 kv heads, head_dim 64), all heads of one layer per iteration, one thread:
// the chunked kernel (attend_token) on an f16, a q8_0 and an f32 cache, against the two-pass scalar twin
// run per kv head (f16).
//   bench_attention --benchmark_filter=Attention/chunked/16384 --benchmark_repetitions=3
// Arguments: context, hot (1: the same 2 layers' KV every iteration, cache-resident up to a few
// thousand positions; 0: cycles through >= 128 MiB of layers so every iteration reads from DRAM).
// bytes_per_second = K+V bytes read.
// Prefill: a prompt slice of n queries at positions offset .. offset + n - 1 (causal), one layer,
// one thread: the per-token kernel in the engine's chunk-major order (every token attends chunk
// c, then c + 1, then each token's chunks are merged) against the tiled prefill kernel.
//   bench_attention --benchmark_filter=Attention/prefill --benchmark_repetitions=3
// Arguments: n, offset. items_per_second = query tokens.
// Core: what one core's floating-point units issue per second (items_per_second = vector
// operations), the bound the decode kernel's per-key figures are read against (see core_args).
//   bench_attention --benchmark_filter=Attention/core
#include <benchmark/benchmark.h>

#include <random>
#include <vector>

#include "model/attention.h"
#include "model/attention_prefill.h"
#include "tensor/kernels.h"
#include "tensor/simd.h"

namespace flashmem {
namespace {

constexpr size_t kColdBytes = size_t{128} << 20;
constexpr int64_t kHeads = 12, kKvHeads = 4, kHeadDim = 64;

void bench_attention(benchmark::State& state, bool chunked, DType type) {
  const int64_t ctx = state.range(0);
  const bool hot = state.range(1) == 1;
  const AttentionShape shape{kHeads, kKvHeads, kHeadDim, type};
  const size_t row_size = row_bytes(type, kKvHeads * kHeadDim);  // one position's K (or V)
  const size_t layer_size = static_cast<size_t>(ctx) * row_size;  // K or V of a layer
  const size_t layer_bytes = 2 * layer_size;
  const size_t n_layers = hot ? 2 : (kColdBytes + layer_bytes - 1) / layer_bytes + 1;
  std::vector<uint8_t> k(layer_size * n_layers), v(k.size());  // [n_layers, ctx, 4 * 64] in type
  std::mt19937 rng(1);
  std::vector<float> row(static_cast<size_t>(kKvHeads * kHeadDim));  // [4 * 64] one position
  for (size_t p = 0; p < k.size() / row_size; ++p)
    for (uint8_t* dst : {&k[p * row_size], &v[p * row_size]}) {
      for (float& f : row) f = static_cast<float>(rng() >> 8) * 0x1p-23f - 1.0f;
      quantize_row(type, row.data(), dst, static_cast<int64_t>(row.size()));
    }
  std::vector<float> q(static_cast<size_t>(kHeads * kHeadDim)), out(q.size());  // [12, 64]
  for (float& f : q) f = static_cast<float>(rng() >> 8) * 0x1p-23f - 1.0f;
  std::vector<float> scratch;
  const int64_t group = kHeads / kKvHeads;
  size_t layer = 0;
  for (auto _ : state) {
    const KvSpan span{0, ctx, &k[layer * layer_size], &v[layer * layer_size]};
    if (chunked) {
      attend_token(shape, std::span(&span, 1), ctx - 1, q.data(), out.data(), scratch);
    } else {
      for (int64_t kvh = 0; kvh < kKvHeads; ++kvh) {
        const float* qh = &q[static_cast<size_t>(kvh * group * kHeadDim)];
        float* oh = &out[static_cast<size_t>(kvh * group * kHeadDim)];
        attend_kv_head_ref(shape, std::span(&span, 1), kvh, ctx - 1, qh, oh, scratch);
      }
    }
    benchmark::DoNotOptimize(out.data());
    layer = layer + 1 == n_layers ? 0 : layer + 1;
  }
  state.SetBytesProcessed(static_cast<int64_t>(state.iterations() * layer_bytes));
}

void attention_args(benchmark::internal::Benchmark* b) {
  for (int64_t ctx : {64, 256, 1024, 4096, 16384}) {
    b->Args({ctx, 1});
    b->Args({ctx, 0});
  }
}

void bench_prefill(benchmark::State& state, bool tiled) {
  const int64_t n = state.range(0), offset = state.range(1), ctx = offset + n;
  const AttentionShape shape{kHeads, kKvHeads, kHeadDim, DType::F16};
  const size_t row_size = row_bytes(DType::F16, kKvHeads * kHeadDim);  // one position's K (or V)
  std::vector<uint8_t> k(static_cast<size_t>(ctx) * row_size), v(k.size());  // [ctx, 4 * 64] f16
  std::mt19937 rng(1);
  std::vector<float> values(static_cast<size_t>(ctx * kKvHeads * kHeadDim));  // [ctx, 4 * 64]
  for (uint8_t* dst : {k.data(), v.data()}) {
    for (float& f : values) f = static_cast<float>(rng() >> 8) * 0x1p-23f - 1.0f;
    quantize_row(DType::F16, values.data(), dst, static_cast<int64_t>(values.size()));
  }
  std::vector<float> q(static_cast<size_t>(n * kHeads * kHeadDim)), out(q.size());  // [n, 12, 64]
  for (float& f : q) f = static_cast<float>(rng() >> 8) * 0x1p-23f - 1.0f;
  const KvSpan span{0, ctx, k.data(), v.data()};
  std::vector<float> scratch;
  PrefillAttention prefill;
  const int64_t stride = attention_partial_floats(shape);
  std::vector<float> partials;  // [n, chunks of the last token, stride]
  for (auto _ : state) {
    if (tiled) {
      prefill.plan(shape, std::span(&span, 1), 0, offset, n, q.data());
      for (int64_t step = 0; step < prefill.n_steps(); ++step)
        for (int64_t item = 0; item < prefill.n_items(); ++item) prefill.attend(item, step, scratch);
      for (int64_t item = 0; item < prefill.n_items(); ++item) prefill.finish(item, out.data());
    } else {
      const int64_t max_chunks = attention_chunks(ctx);
      partials.resize(static_cast<size_t>(n * max_chunks * stride));
      for (int64_t c = 0; c < max_chunks; ++c)
        for (int64_t i = 0; i < n; ++i)
          if (c < attention_chunks(offset + i + 1))
            attend_chunk(shape, std::span(&span, 1), offset + i, c, &q[static_cast<size_t>(i * kHeads * kHeadDim)],
                         &partials[static_cast<size_t>((i * max_chunks + c) * stride)], scratch);
      for (int64_t i = 0; i < n; ++i)
        attend_merge(shape, &partials[static_cast<size_t>(i * max_chunks * stride)],
                     attention_chunks(offset + i + 1), &out[static_cast<size_t>(i * kHeads * kHeadDim)]);
    }
    benchmark::DoNotOptimize(out.data());
  }
  state.SetItemsProcessed(state.iterations() * n);
}

void prefill_args(benchmark::internal::Benchmark* b) {
  b->Args({128, 4096});
  b->Args({512, 16384});
  b->Unit(benchmark::kMillisecond);
}

#if defined(__AVX512F__)
// The decode kernel issues per key, for 12 query heads of 64 values over 4 kv heads, 96 fused
// multiply-adds on 16 lanes (48 for the scores, 48 for Σ p·v) and, for an f16 cache, 32
// conversions of 16 f16 values (K and V). These loops time the same operations with nothing else
// in the way: 12 independent accumulators (more than the latency times the issue rate needs), the
// conversions from memory as the kernel does them. Kind 0: 512-bit FMA; 1: 256-bit FMA (lanes
// per second = 8 x items); 2: a 512-bit f16 conversion feeding a 512-bit FMA (items = pairs).
// On Zen 4, 512-bit operations issue at half the rate of 256-bit ones (two halves through the
// 256-bit units); Zen 5 runs them at full width.
template <class Vec, class Fma>
void run_fmas(benchmark::State& state, Vec init, Fma fma) {
  constexpr int kChains = 12;
  constexpr int64_t kSteps = 1 << 16;
  Vec acc[kChains];
  for (int i = 0; i < kChains; ++i) acc[i] = init;
  for (auto _ : state) {
    for (int64_t k = 0; k < kSteps; ++k) {
#pragma GCC unroll 12
      for (int i = 0; i < kChains; ++i) acc[i] = fma(acc[i], k, i);
    }
    // Only the sum escapes, so the accumulators stay in registers (DoNotOptimize(acc) stored all
    // of them at every step).
    Vec total = acc[0];
    for (int i = 1; i < kChains; ++i) total = total + acc[i];
    benchmark::DoNotOptimize(total);
  }
  state.SetItemsProcessed(state.iterations() * kSteps * kChains);
}

void bench_core(benchmark::State& state) {
  const float m = 0.9999f, c = 1e-4f;
  std::vector<uint16_t> f16(4096, 0x3c00);  // [4096] 1.0 in f16: 256 vectors of 16, cycled
  const uint16_t* f = f16.data();
  switch (state.range(0)) {
    case 0:
      run_fmas(state, _mm512_set1_ps(1.0f), [&](__m512 a, int64_t, int) {
        return _mm512_fmadd_ps(a, _mm512_set1_ps(m), _mm512_set1_ps(c));
      });
      break;
    case 1:
      run_fmas(state, _mm256_set1_ps(1.0f), [&](__m256 a, int64_t, int) {
        return _mm256_fmadd_ps(a, _mm256_set1_ps(m), _mm256_set1_ps(c));
      });
      break;
    default:
      run_fmas(state, _mm512_set1_ps(1.0f), [&](__m512 a, int64_t k, int i) {
        const auto* v = reinterpret_cast<const __m256i*>(f + ((k * 12 + i) & 255) * 16);
        return _mm512_fmadd_ps(_mm512_cvtph_ps(_mm256_loadu_si256(v)), _mm512_set1_ps(m), a);
      });
      break;
  }
}
BENCHMARK(bench_core)->Name("Attention/core")->ArgName("kind")->Arg(0)->Arg(1)->Arg(2);
#endif

BENCHMARK_CAPTURE(bench_prefill, chunks, false)->Name("Attention/prefill_chunks")->Apply(prefill_args);
BENCHMARK_CAPTURE(bench_prefill, tiled, true)->Name("Attention/prefill_tiled")->Apply(prefill_args);
BENCHMARK_CAPTURE(bench_attention, chunked, true, DType::F16)->Name("Attention/chunked")->Apply(attention_args);
BENCHMARK_CAPTURE(bench_attention, chunked_q8, true, DType::Q8_0)->Name("Attention/chunked_q8_0")->Apply(attention_args);
// f32: twice the bytes of f16, no conversion: how much of the f16 rate the f16 -> f32 conversion costs.
BENCHMARK_CAPTURE(bench_attention, chunked_f32, true, DType::F32)->Name("Attention/chunked_f32")->Apply(attention_args);
BENCHMARK_CAPTURE(bench_attention, ref, false, DType::F16)->Name("Attention/ref")->Apply(attention_args);

}  // namespace
}  // namespace flashmem

BENCHMARK_MAIN();
