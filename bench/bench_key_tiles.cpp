// A proposed K layout, measured before it is built (issue 18, item 2): decode scores of one layer
// (12 query heads over 4 kv heads, head_dim 64, one thread) from K in the cache's row layout
// ([key][kv_dim], the engine's block kernels block_scores / block_scores_q8, 32-key blocks with
// all kv heads of a block read while it is in L1, as attention.cpp's tiled_chunk runs them)
// against K transposed in tiles of 16 keys, where one vector holds one value of 16 keys:
//   f16  tile [kv head][hd][16 keys]: per value, one f16 -> f32 conversion feeds 3 heads' FMAs
//        with a broadcast query value, and no score needs a horizontal reduction;
//   q8_0 tile [kv head][block][8 quads][16 keys][4 codes + 128] + the 16 keys' f16 scales: one
//        dpbusd per (quad, head) against 4 broadcast query codes, the key's +128 bias removed
//        once per block with the query block's code sum; the same integer block sums and the
//        same per-block fused multiply-add as dot_q8_0, so its scores are bit-identical.
// The tile kernels live here, not in src/, until the KV layout changes (see docs/BENCHMARKS.md).
// Each benchmark first checks the tile scores against the row kernel's (q8_0 bit for bit, f16
// within 1e-5 of the largest score: the sums run in another order) and fails otherwise.
//   bench_key_tiles --benchmark_repetitions=3
// Arguments: keys, hot (1: the same keys every iteration, cache-resident; 0: cycles through
// >= 128 MiB of copies so that every iteration reads from DRAM), threads (each scores one
// contiguous half of the keys, as decode's threads do). bytes_per_second = K bytes read.
// The score pass alone: the thirteenth session's trial of tiles in the engine (branch key-tiles,
// docs/BENCHMARKS.md) found the whole decode kernel no faster there.
#include <benchmark/benchmark.h>

#include <cmath>
#include <cstring>
#include <random>
#include <vector>

#include "model/attention_tile_avx512.h"  // the engine's block kernels (internal to src/model)
#include "tensor/convert.h"
#include "tensor/kernels.h"
#include "util/thread_pool.h"

#if defined(FLASHMEM_ATTENTION_AVX512)
namespace flashmem {
namespace {

constexpr size_t kColdBytes = size_t{128} << 20;
constexpr int64_t kKvHeads = 4, kHeadDim = 64, kGroup = 3, kHeads = kKvHeads * kGroup;
constexpr int64_t kKvDim = kKvHeads * kHeadDim, kTileKeys = 16, kBlocks = kHeadDim / kQ8Block;
constexpr size_t kQ8TileBlockBytes = 8 * kTileKeys * 4 + kTileKeys * 2;  // codes + scales of one block

float uniform(std::mt19937& rng) { return static_cast<float>(rng() >> 8) * 0x1p-23f - 1.0f; }

// K of `keys` positions in both layouts, `copies` times (DRAM rows cycle through them), and the
// query in f32 and q8_0.
struct KeyData {
  DType type;
  int64_t keys = 0, copies = 0;
  size_t row_size = 0, copy_bytes = 0;
  std::vector<uint8_t> rows;   // [copies][keys][kv_dim] in type
  std::vector<uint8_t> tiles;  // [copies][keys / 16][kv head][tile bytes]
  std::vector<float> q;        // [12, 64]
  std::vector<BlockQ8_0> q8;   // [12, 2]
  std::vector<float> q8_d;     // [2, 12] block-major, as tiled_chunk passes them
  std::vector<int32_t> q8_sum;  // [12, 2] code sums of the query blocks

  size_t tile_bytes() const {
    return type == DType::Q8_0 ? kBlocks * kQ8TileBlockBytes : static_cast<size_t>(kHeadDim * kTileKeys * 2);
  }

  KeyData(DType t, int64_t n, bool hot) : type(t), keys(n) {
    row_size = row_bytes(type, kKvDim);
    copy_bytes = static_cast<size_t>(keys) * row_size;
    copies = hot ? 1 : static_cast<int64_t>(kColdBytes / copy_bytes + 1);
    rows.resize(copy_bytes * copies);
    tiles.resize(static_cast<size_t>(keys / kTileKeys * kKvHeads) * tile_bytes() * copies);
    std::mt19937 rng(1);
    std::vector<float> row(kKvDim);
    for (int64_t c = 0; c < copies; ++c)
      for (int64_t j = 0; j < keys; ++j) {
        for (float& f : row) f = uniform(rng);
        uint8_t* r = &rows[c * copy_bytes + j * row_size];
        quantize_row(type, row.data(), r, kKvDim);
        for (int64_t h = 0; h < kKvHeads; ++h) to_tile(c, j, h, r);
      }
    q.resize(kHeads * kHeadDim);
    for (float& f : q) f = uniform(rng);
    q8.resize(kHeads * kBlocks);
    quantize_row(DType::Q8_0, q.data(), q8.data(), kHeads * kHeadDim);
    q8_d.resize(q8.size());
    q8_sum.resize(q8.size());
    for (int64_t h = 0; h < kHeads; ++h)
      for (int64_t b = 0; b < kBlocks; ++b) {
        q8_d[b * kHeads + h] = fp16_to_f32(q8[h * kBlocks + b].d);
        int32_t sum = 0;
        for (int8_t code : q8[h * kBlocks + b].qs) sum += code;
        q8_sum[h * kBlocks + b] = sum;
      }
  }

  uint8_t* tile(int64_t c, int64_t t, int64_t h) {
    return &tiles[((c * (keys / kTileKeys) + t) * kKvHeads + h) * tile_bytes()];
  }

  // Key j's kv head h slice of row r into its tile: value d of key j at [d][j % 16] (f16), code i
  // of block b at [b][i / 4][j % 16][i % 4] + 128, its scale after the block's codes.
  void to_tile(int64_t c, int64_t j, int64_t h, const uint8_t* r) {
    uint8_t* out = tile(c, j / kTileKeys, h);
    const int64_t jj = j % kTileKeys;
    if (type == DType::F16) {
      const auto* v = reinterpret_cast<const uint16_t*>(r) + h * kHeadDim;
      for (int64_t d = 0; d < kHeadDim; ++d) std::memcpy(out + (d * kTileKeys + jj) * 2, v + d, 2);
      return;
    }
    const auto* blocks = reinterpret_cast<const BlockQ8_0*>(r) + h * kBlocks;
    for (int64_t b = 0; b < kBlocks; ++b) {
      uint8_t* ob = out + b * kQ8TileBlockBytes;
      for (int i = 0; i < kQ8Block; ++i)
        ob[(i / 4) * kTileKeys * 4 + jj * 4 + i % 4] = static_cast<uint8_t>(blocks[b].qs[i]) ^ 0x80;
      std::memcpy(ob + 8 * kTileKeys * 4 + jj * 2, &blocks[b].d, 2);
    }
  }
};

constexpr float kScale = 0.125f;  // 1 / sqrt(head_dim)
// Key tiles fetched ahead: from DRAM with 2 threads (thirteenth session) 1 tile ahead read 29-39
// GB/s, 2 tiles 49-60, 8 tiles 43-52.
constexpr int64_t kTilesAhead = 2;

// scores [12][keys] of keys [j_begin, j_end) (multiples of 32) from copy c's rows with the
// engine's block kernels.
void row_scores(KeyData& k, int64_t c, std::vector<const uint8_t*>& ptrs, float* scores, int64_t j_begin,
                int64_t j_end) {
  for (int64_t j = j_begin; j < j_end; ++j) ptrs[j] = &k.rows[c * k.copy_bytes + j * k.row_size];
  const size_t slice = k.row_size / kKvHeads;
  for (int64_t b = j_begin; b < j_end; b += attention_tile::kBlockKeys) {
    // The next block's rows fetched ahead, as tiled_chunk's RowPrefetcher does (spread over the
    // block's steps there, all at once here): without it the row layout reads DRAM at half speed.
    if (b + attention_tile::kBlockKeys < j_end) {
      const uint8_t* next = ptrs[b + attention_tile::kBlockKeys];
      for (size_t at = 0; at < attention_tile::kBlockKeys * k.row_size; at += 64)
        _mm_prefetch(reinterpret_cast<const char*>(next + at), _MM_HINT_T0);
    }
    for (int64_t h = 0; h < kKvHeads; ++h) {
      alignas(64) float block[kGroup * kAttentionChunkKeys];  // [3][256] the block's lanes at 0 .. 31
      if (k.type == DType::Q8_0) {
        attention_tile_avx512::block_scores_q8<kGroup>(ptrs.data() + b, attention_tile::kBlockKeys, h * slice,
                                                       &k.q8[h * kGroup * kBlocks], &k.q8_d[h * kGroup], kHeads,
                                                       kBlocks, kScale, block, [] {});
      } else {
        attention_tile_avx512::block_scores<attention_tile::F16Slice, kGroup>(
            ptrs.data() + b, attention_tile::kBlockKeys, h * slice, &k.q[h * kGroup * kHeadDim], kHeadDim, kScale,
            block, [] {});
      }
      for (int64_t s = 0; s < kGroup; ++s)
        std::memcpy(scores + (h * kGroup + s) * k.keys + b, block + s * kAttentionChunkKeys,
                    attention_tile::kBlockKeys * sizeof(float));
    }
  }
}

// scores [12][keys] of keys [j_begin, j_end) (multiples of 16) from copy c's tiles.
void tile_scores(KeyData& k, int64_t c, float* scores, int64_t j_begin, int64_t j_end) {
  const __m512 scale = _mm512_set1_ps(kScale);
  const size_t tile_bytes = k.tile_bytes();
  for (int64_t t = j_begin / kTileKeys; t < j_end / kTileKeys; ++t)
    for (int64_t h = 0; h < kKvHeads; ++h) {
      const uint8_t* tp = k.tile(c, t, h);
      // Hardware prefetchers alone leave the tiles at 25 (q8_0) to 38 (f16) GB/s from DRAM with
      // both threads: each kv head's tile is fetched kTilesAhead 16-key ranges ahead (tiles lie
      // [16-key range][kv head], so that is kTilesAhead * kKvHeads tiles on).
      if (t + kTilesAhead < j_end / kTileKeys)
        for (size_t at = 0; at < tile_bytes; at += 64)
          _mm_prefetch(reinterpret_cast<const char*>(tp) + kTilesAhead * kKvHeads * tile_bytes + at, _MM_HINT_T0);
      __m512 sc[kGroup];
      if (k.type == DType::F16) {
        const float* q = &k.q[h * kGroup * kHeadDim];
        __m512 acc[4][kGroup];  // 4 interleaved sums per head: FMA latency 4, 2 per cycle
        for (auto& a : acc)
          for (__m512& x : a) x = _mm512_setzero_ps();
        for (int64_t d = 0; d < kHeadDim; d += 4)
          for (int u = 0; u < 4; ++u) {
            const __m512 kv = _mm512_cvtph_ps(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(tp + (d + u) * 32)));
            for (int s = 0; s < kGroup; ++s)
              acc[u][s] = _mm512_fmadd_ps(kv, _mm512_set1_ps(q[s * kHeadDim + d + u]), acc[u][s]);
          }
        for (int s = 0; s < kGroup; ++s)
          sc[s] = _mm512_add_ps(_mm512_add_ps(acc[0][s], acc[1][s]), _mm512_add_ps(acc[2][s], acc[3][s]));
      } else {
        for (__m512& x : sc) x = _mm512_setzero_ps();
        for (int64_t b = 0; b < kBlocks; ++b) {
          const uint8_t* bp = tp + b * kQ8TileBlockBytes;
          __m512i dot[kGroup];  // Σ (k + 128) q - 128 Σ q = Σ k q, exact in int32
          for (int s = 0; s < kGroup; ++s) dot[s] = _mm512_set1_epi32(-128 * k.q8_sum[(h * kGroup + s) * kBlocks + b]);
          for (int g = 0; g < 8; ++g) {
            const __m512i codes = _mm512_loadu_si512(bp + g * kTileKeys * 4);
            for (int s = 0; s < kGroup; ++s) {
              int32_t q4;
              std::memcpy(&q4, k.q8[(h * kGroup + s) * kBlocks + b].qs + 4 * g, 4);
              dot[s] = _mm512_dpbusd_epi32(dot[s], codes, _mm512_set1_epi32(q4));
            }
          }
          const __m512 d_k = _mm512_cvtph_ps(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(bp + 8 * kTileKeys * 4)));
          for (int s = 0; s < kGroup; ++s)
            sc[s] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(dot[s]),
                                    _mm512_mul_ps(d_k, _mm512_set1_ps(k.q8_d[b * kHeads + h * kGroup + s])), sc[s]);
        }
      }
      for (int s = 0; s < kGroup; ++s)
        _mm512_storeu_ps(scores + (h * kGroup + s) * k.keys + t * kTileKeys, _mm512_mul_ps(sc[s], scale));
    }
}

void bench_key_scores(benchmark::State& state, DType type, bool tiles) {
  KeyData k(type, state.range(0), state.range(1) == 1);
  // Threads split the keys into contiguous halves (whole 32-key blocks), as decode's chunks do.
  ThreadPool pool(static_cast<int>(state.range(2)));
  std::vector<const uint8_t*> ptrs(k.keys);
  std::vector<float> want(kHeads * k.keys), got(want.size());  // [12][keys]
  row_scores(k, 0, ptrs, want.data(), 0, k.keys);
  tile_scores(k, 0, got.data(), 0, k.keys);
  float largest = 0, worst = 0;
  for (size_t i = 0; i < want.size(); ++i) {
    largest = std::max(largest, std::fabs(want[i]));
    worst = std::max(worst, std::fabs(want[i] - got[i]));
  }
  const bool exact = type == DType::Q8_0;
  if (exact ? std::memcmp(want.data(), got.data(), want.size() * sizeof(float)) != 0 : worst > 1e-5f * largest) {
    state.SkipWithError("tile scores differ from the row kernel's");
    return;
  }
  int64_t c = 0;
  for (auto _ : state) {
    pool.parallel_for(k.keys, attention_tile::kBlockKeys, [&](int64_t j_begin, int64_t j_end) {
      if (tiles) {
        tile_scores(k, c, got.data(), j_begin, j_end);
      } else {
        row_scores(k, c, ptrs, got.data(), j_begin, j_end);
      }
    });
    benchmark::DoNotOptimize(got.data());
    c = (c + 1) % k.copies;
  }
  state.SetBytesProcessed(static_cast<int64_t>(state.iterations()) * static_cast<int64_t>(k.copy_bytes));
}

void key_args(benchmark::internal::Benchmark* b) {
  b->ArgNames({"keys", "hot", "threads"});
  b->Args({1024, 1, 1})->Args({16384, 0, 1})->Args({2048, 1, 2})->Args({16384, 0, 2})->UseRealTime();
}

BENCHMARK_CAPTURE(bench_key_scores, rows_f16, DType::F16, false)->Name("KeyScores/rows_f16")->Apply(key_args);
BENCHMARK_CAPTURE(bench_key_scores, tiles_f16, DType::F16, true)->Name("KeyScores/tiles_f16")->Apply(key_args);
BENCHMARK_CAPTURE(bench_key_scores, rows_q8_0, DType::Q8_0, false)->Name("KeyScores/rows_q8_0")->Apply(key_args);
BENCHMARK_CAPTURE(bench_key_scores, tiles_q8_0, DType::Q8_0, true)->Name("KeyScores/tiles_q8_0")->Apply(key_args);

}  // namespace
}  // namespace flashmem
BENCHMARK_MAIN();
#else
#include <cstdio>
int main() {
  std::puts("bench_key_tiles: the tile kernels are AVX-512 (F, BW, VL, VNNI); this build has none");
  return 0;
}
#endif
