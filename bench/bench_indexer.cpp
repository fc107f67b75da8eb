// Memory Indexer costs: one scoring cycle over the full history (the per-τ work of LSA), the
// query tower per decode token, and the key tower per completed chunk.
//   ./build/bin/bench_indexer --benchmark_filter=ScoreCycle
#include <benchmark/benchmark.h>

#include <cstring>
#include <random>

#include "indexer/indexer_model.h"
#include "indexer/scoring.h"
#include "indexer/towers.h"

namespace flashmem {
namespace {

constexpr int64_t kLayers = 3;          // the reference's target layers 10/12/20
constexpr int64_t kChunkTokens = 4;

std::vector<uint8_t> random_keys(int64_t n, uint64_t seed) {
  std::mt19937_64 rng(seed);
  std::normal_distribution<float> normal(0.0f, 1.0f);
  std::vector<uint8_t> keys(static_cast<size_t>(n * kCompressedKeyBytes));  // [n, 132]
  float k[kKeyDim];
  for (int64_t c = 0; c < n; ++c) {
    for (float& x : k) x = normal(rng);
    const CompressedKey ck = compress_key(k);
    std::memcpy(keys.data() + c * kCompressedKeyBytes, ck.data(), ck.size());
  }
  return keys;
}

IndexerQuery random_query(int64_t heads, uint64_t seed) {
  std::mt19937_64 rng(seed);
  std::normal_distribution<float> normal(0.0f, 1.0f);
  IndexerQuery q;
  q.n_heads = heads;
  q.q.resize(static_cast<size_t>(heads * kKeyDim));
  q.weights.resize(static_cast<size_t>(heads));
  for (float& x : q.q) x = normal(rng);
  for (float& x : q.weights) x = normal(rng);
  return q;
}

// args: context tokens, heads, threads. One iteration = scoring all chunks at all 3 layers.
void BM_ScoreCycle(benchmark::State& state) {
  const int64_t n_chunks = state.range(0) / kChunkTokens, heads = state.range(1);
  ThreadPool pool(static_cast<int>(state.range(2)));
  std::vector<std::vector<uint8_t>> keys;    // [layers][n_chunks, 132]
  std::vector<IndexerQuery> queries;         // [layers]
  for (int64_t l = 0; l < kLayers; ++l) {
    keys.push_back(random_keys(n_chunks, 10 + l));
    queries.push_back(random_query(heads, 20 + l));
  }
  std::vector<float> logits(static_cast<size_t>(n_chunks));
  for (auto _ : state) {
    for (int64_t l = 0; l < kLayers; ++l)
      score_logits(queries[l], keys[l].data(), n_chunks, logits.data(), &pool);
    benchmark::DoNotOptimize(logits.data());
  }
  state.counters["chunks/s"] = benchmark::Counter(
      static_cast<double>(n_chunks * kLayers), benchmark::Counter::kIsIterationInvariantRate);
}
BENCHMARK(BM_ScoreCycle)
    ->ArgNames({"ctx", "heads", "threads"})
    ->ArgsProduct({{65536}, {8, 16, 64}, {1, 2}})
    ->Args({262144, 16, 2})
    ->Unit(benchmark::kMillisecond)
    ->UseRealTime();

void BM_ScoreRef(benchmark::State& state) {
  const int64_t n_chunks = 4096, heads = state.range(0);
  const std::vector<uint8_t> keys = random_keys(n_chunks, 1);
  const IndexerQuery q = random_query(heads, 2);
  std::vector<float> logits(static_cast<size_t>(n_chunks));
  for (auto _ : state) {
    score_logits_ref(q, keys.data(), n_chunks, logits.data());
    benchmark::DoNotOptimize(logits.data());
  }
}
BENCHMARK(BM_ScoreRef)->Arg(16)->Unit(benchmark::kMillisecond);

// args: D, R, H. One query tower (one layer) on one thread, bf16 weights.
void BM_QueryTower(benchmark::State& state) {
  RandomIndexerSpec spec;
  spec.layers = {0};
  spec.hidden_dim = state.range(0);
  spec.q_lora_rank = state.range(1);
  spec.n_heads = state.range(2);
  spec.type = DType::BF16;
  const IndexerModel model = create_random_indexer(spec, 3);
  std::vector<float> hidden(static_cast<size_t>(spec.hidden_dim), 0.1f);  // [D]
  IndexerQuery q;
  for (auto _ : state) {
    compute_query(model, model.layers()[0], hidden.data(), 70000, q, nullptr);
    benchmark::DoNotOptimize(q.q.data());
  }
}
BENCHMARK(BM_QueryTower)
    ->ArgNames({"D", "R", "H"})
    ->Args({768, 256, 16})
    ->Args({4096, 2048, 64})
    ->Unit(benchmark::kMicrosecond);

// One key (one layer) from a 4-token chunk, bf16 weights.
void BM_KeyTower(benchmark::State& state) {
  RandomIndexerSpec spec;
  spec.layers = {0};
  spec.hidden_dim = state.range(0);
  spec.type = DType::BF16;
  const IndexerModel model = create_random_indexer(spec, 4);
  std::vector<float> rows(static_cast<size_t>(kChunkTokens * spec.hidden_dim), 0.1f);  // [4, D]
  for (auto _ : state) {
    const CompressedKey k = compute_key(model, model.layers()[0], rows.data(), kChunkTokens, 70000, nullptr);
    benchmark::DoNotOptimize(k.data());
  }
}
BENCHMARK(BM_KeyTower)->ArgName("D")->Arg(768)->Arg(4096)->Unit(benchmark::kMicrosecond);

}  // namespace
}  // namespace flashmem

BENCHMARK_MAIN();
