// matvec weight bandwidth and matmul FLOP rate on the 125M benchmark model's shapes.
//   bench_kernels --benchmark_filter=Matvec/q8_0 --benchmark_repetitions=3
//   bench_kernels --benchmark_filter=decode_batch --benchmark_repetitions=3   (decode of N sequences)
// matvec cycles through enough copies of the matrix (>= 128 MiB) that every call streams its
// weights from DRAM, as decode does (the whole model does not fit in the 32 MiB L3).
#include <benchmark/benchmark.h>

#include <memory>
#include <random>
#include <vector>

#include "tensor/kernels.h"

namespace flashmem {
namespace {

constexpr size_t kColdBytes = size_t{128} << 20;

ThreadPool* pool_for(int threads) {
  static ThreadPool one(1), two(2);
  return threads == 1 ? &one : &two;
}

std::vector<float> random_floats(int64_t n, uint32_t seed) {
  std::mt19937 rng(seed);
  std::vector<float> v(static_cast<size_t>(n));  // [n]
  for (float& f : v) f = static_cast<float>(rng() >> 8) * 0x1p-23f - 1.0f;
  return v;
}

// n_copies weight matrices [rows, cols] of `type` back to back, each with different random
// values so that no copy can be deduplicated into the same physical pages as another.
std::vector<uint8_t> make_weights(DType type, int64_t rows, int64_t cols, size_t n_copies) {
  const size_t stride = row_bytes(type, cols);
  std::vector<uint8_t> w(stride * static_cast<size_t>(rows) * n_copies);  // [n_copies, rows, row_bytes]
  std::mt19937 rng(1);
  std::vector<float> row(static_cast<size_t>(cols));  // [cols]
  for (int64_t r = 0; r < rows * static_cast<int64_t>(n_copies); ++r) {
    for (float& f : row) f = static_cast<float>(rng() >> 8) * 0x1p-23f - 1.0f;
    quantize_row(type, row.data(), w.data() + r * stride, cols);
  }
  return w;
}

// range(3) == 1: weights stay hot in cache (one copy), which isolates the kernel's compute cost.
void bench_matvec(benchmark::State& state, DType type) {
  const int64_t rows = state.range(0), cols = state.range(1);
  const int threads = static_cast<int>(state.range(2));
  const bool hot = state.range(3) == 1;
  const size_t bytes = row_bytes(type, cols) * static_cast<size_t>(rows);
  const size_t n_copies = hot ? 1 : (kColdBytes + bytes - 1) / bytes;
  const std::vector<uint8_t> w = make_weights(type, rows, cols, n_copies);
  const std::vector<float> x = random_floats(cols, 2);  // [cols]
  std::vector<float> y(static_cast<size_t>(rows));      // [rows]
  ThreadPool* pool = pool_for(threads);
  size_t copy = 0;
  for (auto _ : state) {
    matvec(type, w.data() + copy * bytes, x.data(), y.data(), rows, cols, pool);
    benchmark::DoNotOptimize(y.data());
    copy = copy + 1 == n_copies ? 0 : copy + 1;
  }
  state.SetBytesProcessed(static_cast<int64_t>(state.iterations() * bytes));
}

void bench_matmul(benchmark::State& state, DType type) {
  const int64_t n_tokens = state.range(0), rows = state.range(1), cols = state.range(2);
  const int threads = static_cast<int>(state.range(3));
  const std::vector<uint8_t> w = make_weights(type, rows, cols, 1);
  const std::vector<float> x = random_floats(n_tokens * cols, 3);  // [n_tokens, cols]
  std::vector<float> y(static_cast<size_t>(n_tokens * rows));      // [n_tokens, rows]
  ThreadPool* pool = pool_for(threads);
  for (auto _ : state) {
    matmul(type, w.data(), x.data(), y.data(), n_tokens, rows, cols, pool);
    benchmark::DoNotOptimize(y.data());
  }
  state.counters["FLOP/s"] = benchmark::Counter(2.0 * static_cast<double>(n_tokens * rows * cols),
                                                benchmark::Counter::kIsIterationInvariantRate);
}

// The 125M benchmark model's weight matrices: per layer q, k, v, o, gate, up, down.
constexpr int kModelLayers = 12;
constexpr std::pair<int64_t, int64_t> kLayerShapes[] = {
    {768, 768}, {256, 768}, {256, 768}, {768, 768}, {2048, 768}, {2048, 768}, {768, 2048}};
constexpr std::pair<int64_t, int64_t> kOutputShape = {32000, 768};

// All weight matrices of the model, each in its own memory (so streaming is from DRAM).
struct ModelWeights {
  std::vector<std::vector<uint8_t>> matrices;
  std::vector<std::pair<int64_t, int64_t>> shapes;
  size_t bytes = 0;
};

ModelWeights make_model(DType type, bool with_output) {
  ModelWeights m;
  for (int l = 0; l < kModelLayers; ++l)
    for (auto shape : kLayerShapes) m.shapes.push_back(shape);
  if (with_output) m.shapes.push_back(kOutputShape);
  for (auto [rows, cols] : m.shapes) {
    m.matrices.push_back(make_weights(type, rows, cols, 1));
    m.bytes += m.matrices.back().size();
  }
  return m;
}

// One decode step's matvecs (every layer matrix + output): the weight-streaming floor of
// decode. Reported as tokens/s alongside bytes/s.
void bench_decode_pass(benchmark::State& state, DType type) {
  const ModelWeights m = make_model(type, true);
  ThreadPool* pool = pool_for(static_cast<int>(state.range(0)));
  const std::vector<float> x = random_floats(2048, 4);  // [max cols]
  std::vector<float> y(32000);                          // [max rows]
  for (auto _ : state) {
    for (size_t i = 0; i < m.matrices.size(); ++i)
      matvec(type, m.matrices[i].data(), x.data(), y.data(), m.shapes[i].first, m.shapes[i].second, pool);
    benchmark::DoNotOptimize(y.data());
  }
  state.SetBytesProcessed(static_cast<int64_t>(state.iterations() * m.bytes));
  state.counters["tok/s"] = benchmark::Counter(1.0, benchmark::Counter::kIsIterationInvariantRate);
}

// One batched decode step of N sequences (matvec_batch over every layer matrix + output): what
// `bench --sequences N` shares. tok/s counts all N tokens, so the ratio to N = 1 is the weight
// side's batching gain (bit-identical arithmetic per token, weights read once per batch).
void bench_decode_batch(benchmark::State& state, DType type) {
  const int64_t n_tokens = state.range(0);
  const ModelWeights m = make_model(type, true);
  ThreadPool* pool = pool_for(static_cast<int>(state.range(1)));
  const std::vector<float> x = random_floats(n_tokens * 2048, 6);  // [n_tokens, max cols]
  std::vector<float> y(static_cast<size_t>(n_tokens * 32000));     // [n_tokens, max rows]
  for (auto _ : state) {
    for (size_t i = 0; i < m.matrices.size(); ++i)
      matvec_batch(type, m.matrices[i].data(), x.data(), y.data(), n_tokens, m.shapes[i].first,
                   m.shapes[i].second, pool);
    benchmark::DoNotOptimize(y.data());
  }
  state.counters["tok/s"] = benchmark::Counter(static_cast<double>(n_tokens),
                                               benchmark::Counter::kIsIterationInvariantRate);
}

// One 512-token prefill's matmuls over every layer matrix (logits for the last token only).
void bench_prefill_pass(benchmark::State& state, DType type) {
  const int64_t n_tokens = 512;
  const ModelWeights m = make_model(type, false);
  ThreadPool* pool = pool_for(static_cast<int>(state.range(0)));
  const std::vector<float> x = random_floats(n_tokens * 2048, 5);  // [n_tokens, max cols]
  std::vector<float> y(static_cast<size_t>(n_tokens * 2048));      // [n_tokens, max rows]
  double flops = 0.0;
  for (auto [rows, cols] : m.shapes) flops += 2.0 * static_cast<double>(n_tokens * rows * cols);
  for (auto _ : state) {
    for (size_t i = 0; i < m.matrices.size(); ++i)
      matmul(type, m.matrices[i].data(), x.data(), y.data(), n_tokens, m.shapes[i].first,
             m.shapes[i].second, pool);
    benchmark::DoNotOptimize(y.data());
  }
  state.counters["FLOP/s"] = benchmark::Counter(flops, benchmark::Counter::kIsIterationInvariantRate);
  state.counters["tok/s"] = benchmark::Counter(static_cast<double>(n_tokens),
                                               benchmark::Counter::kIsIterationInvariantRate);
}

// {rows, cols, threads, hot}: output matrix, ffn gate/up, ffn down, K/V projections.
void matvec_shapes(benchmark::internal::Benchmark* b) {
  b->ArgNames({"rows", "cols", "threads", "hot"});
  for (int threads : {1, 2})
    for (auto [rows, cols] : {std::pair{32000, 768}, {2048, 768}, {768, 2048}, {256, 768}})
      b->Args({rows, cols, threads, 0});
  for (int threads : {1, 2}) b->Args({2048, 768, threads, 1});
  b->UseRealTime();
}

void matmul_shapes(benchmark::internal::Benchmark* b) {
  b->ArgNames({"tokens", "rows", "cols", "threads"});
  for (int threads : {1, 2}) b->Args({512, 2048, 768, threads});
  for (auto [rows, cols] : {std::pair{768, 768}, {256, 768}, {768, 2048}}) b->Args({512, rows, cols, 2});
  b->Args({64, 2048, 768, 2});
  b->UseRealTime();
}

// The K-quants and the other 32-element block types (issue 16): one thread and hot weights
// isolate the kernel's compute per block; the model's shapes; and 2048 x 768 from memory on one
// and two threads, the rows comparable with q8_0's.
void kquant_matvec_shapes(benchmark::internal::Benchmark* b) {
  b->ArgNames({"rows", "cols", "threads", "hot"});
  for (auto [rows, cols] : {std::pair{768, 768}, {2048, 768}, {768, 2048}, {32000, 768}}) b->Args({rows, cols, 1, 1});
  for (int threads : {1, 2}) b->Args({2048, 768, threads, 0});
  b->UseRealTime();
}
void kquant_matmul_shapes(benchmark::internal::Benchmark* b) {
  b->ArgNames({"tokens", "rows", "cols", "threads"});
  for (auto [rows, cols] : {std::pair{768, 768}, {2048, 768}, {768, 2048}}) b->Args({512, rows, cols, 1});
  b->Args({64, 32000, 768, 1});  // 64 tokens: the output matrix is only run for a few positions
  // Few tokens: where repacking a panel stops paying (matmul_kquant_int8.cpp's kMinTokens).
  for (int64_t tokens : {8, 12, 16, 24, 32}) b->Args({tokens, 2048, 768, 1});
  b->Args({512, 2048, 768, 2});
  b->UseRealTime();
}

BENCHMARK_CAPTURE(bench_matvec, q8_0, DType::Q8_0)->Apply(matvec_shapes);
BENCHMARK_CAPTURE(bench_matvec, f16, DType::F16)->Apply(matvec_shapes);
BENCHMARK_CAPTURE(bench_matvec, q4_0, DType::Q4_0)->Apply(matvec_shapes);
BENCHMARK_CAPTURE(bench_matvec, f32, DType::F32)->Apply(matvec_shapes);
BENCHMARK_CAPTURE(bench_decode_pass, q8_0, DType::Q8_0)->ArgName("threads")->Arg(1)->Arg(2)->UseRealTime();
BENCHMARK_CAPTURE(bench_decode_pass, f16, DType::F16)->ArgName("threads")->Arg(1)->Arg(2)->UseRealTime();
// threads:1 rows: the kernel's arithmetic per extra token on one core (the signal on a shared
// machine, under chrt -f 1; see docs/BENCHMARKS.md).
BENCHMARK_CAPTURE(bench_decode_batch, q8_0, DType::Q8_0)
    ->ArgNames({"sequences", "threads"})->Args({1, 2})->Args({4, 2})->Args({8, 2})->Args({16, 2})
    ->Args({1, 1})->Args({8, 1})->UseRealTime();
BENCHMARK_CAPTURE(bench_prefill_pass, q8_0, DType::Q8_0)->ArgName("threads")->Arg(2)->UseRealTime();
BENCHMARK_CAPTURE(bench_prefill_pass, f16, DType::F16)->ArgName("threads")->Arg(2)->UseRealTime();
BENCHMARK_CAPTURE(bench_matmul, f32, DType::F32)->Apply(matmul_shapes);
BENCHMARK_CAPTURE(bench_matmul, f16, DType::F16)->Apply(matmul_shapes);
BENCHMARK_CAPTURE(bench_matmul, q8_0, DType::Q8_0)->Apply(matmul_shapes);
BENCHMARK_CAPTURE(bench_matmul, q4_0, DType::Q4_0)->Apply(matmul_shapes);
BENCHMARK_CAPTURE(bench_matvec, q2_k, DType::Q2_K)->Apply(kquant_matvec_shapes);
BENCHMARK_CAPTURE(bench_matvec, q3_k, DType::Q3_K)->Apply(kquant_matvec_shapes);
BENCHMARK_CAPTURE(bench_matvec, q4_k, DType::Q4_K)->Apply(kquant_matvec_shapes);
BENCHMARK_CAPTURE(bench_matvec, q5_k, DType::Q5_K)->Apply(kquant_matvec_shapes);
BENCHMARK_CAPTURE(bench_matvec, q6_k, DType::Q6_K)->Apply(kquant_matvec_shapes);
BENCHMARK_CAPTURE(bench_matvec, q4_1, DType::Q4_1)->Apply(kquant_matvec_shapes);
BENCHMARK_CAPTURE(bench_matvec, q5_0, DType::Q5_0)->Apply(kquant_matvec_shapes);
BENCHMARK_CAPTURE(bench_matvec, q5_1, DType::Q5_1)->Apply(kquant_matvec_shapes);
BENCHMARK_CAPTURE(bench_matvec, iq4_nl, DType::IQ4_NL)->Apply(kquant_matvec_shapes);
BENCHMARK_CAPTURE(bench_matmul, q2_k, DType::Q2_K)->Apply(kquant_matmul_shapes);
BENCHMARK_CAPTURE(bench_matmul, q3_k, DType::Q3_K)->Apply(kquant_matmul_shapes);
BENCHMARK_CAPTURE(bench_matmul, q4_k, DType::Q4_K)->Apply(kquant_matmul_shapes);
BENCHMARK_CAPTURE(bench_matmul, q5_k, DType::Q5_K)->Apply(kquant_matmul_shapes);
BENCHMARK_CAPTURE(bench_matmul, q6_k, DType::Q6_K)->Apply(kquant_matmul_shapes);
BENCHMARK_CAPTURE(bench_decode_pass, q4_k, DType::Q4_K)->ArgName("threads")->Arg(1)->Arg(2)->UseRealTime();
BENCHMARK_CAPTURE(bench_decode_pass, q6_k, DType::Q6_K)->ArgName("threads")->Arg(1)->Arg(2)->UseRealTime();
BENCHMARK_CAPTURE(bench_decode_batch, q4_k, DType::Q4_K)
    ->ArgNames({"sequences", "threads"})->Args({1, 2})->Args({4, 2})->Args({8, 2})->UseRealTime();
BENCHMARK_CAPTURE(bench_prefill_pass, q4_k, DType::Q4_K)->ArgName("threads")->Arg(1)->Arg(2)->UseRealTime();

}  // namespace
}  // namespace flashmem

BENCHMARK_MAIN();
