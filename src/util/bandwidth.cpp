#include "util/bandwidth.h"

#include <algorithm>
#include <cstdint>
#include <cstdlib>
#include <memory>
#include <vector>

#if defined(__AVX2__)
#include <immintrin.h>
#endif

#include "util/timer.h"

namespace flashmem {
namespace {

// Sums 64-bit words so the compiler cannot drop the loads; eight accumulators keep enough loads in
// flight to saturate the memory system. n is a multiple of 32 (the caller's split).
uint64_t read_range(const uint64_t* p, size_t n) {
#if defined(__AVX2__)
  __m256i a[8];
  for (__m256i& x : a) x = _mm256_setzero_si256();
  for (size_t i = 0; i < n; i += 32)
    for (int k = 0; k < 8; ++k)
      a[k] = _mm256_add_epi64(a[k], _mm256_load_si256(reinterpret_cast<const __m256i*>(p + i + 4 * k)));
  for (int k = 1; k < 8; ++k) a[0] = _mm256_add_epi64(a[0], a[k]);
  alignas(32) uint64_t lanes[4];
  _mm256_store_si256(reinterpret_cast<__m256i*>(lanes), a[0]);
  return lanes[0] + lanes[1] + lanes[2] + lanes[3];
#else
  uint64_t s0 = 0, s1 = 0, s2 = 0, s3 = 0;
  for (size_t i = 0; i < n; i += 4) {
    s0 += p[i];
    s1 += p[i + 1];
    s2 += p[i + 2];
    s3 += p[i + 3];
  }
  return s0 + s1 + s2 + s3;
#endif
}

}  // namespace

BandwidthReading measure_read_bandwidth(ThreadPool& pool, size_t bytes, int passes) {
  // 32 words (256 bytes) per thread slice: whole iterations of read_range's loop.
  const size_t n = bytes / sizeof(uint64_t) / 32 * 32;
  // 64-byte aligned so every load stays within one cache line.
  std::unique_ptr<uint64_t[], decltype(&std::free)> buf(
      static_cast<uint64_t*>(std::aligned_alloc(64, n * sizeof(uint64_t))), &std::free);
  // Touch every page in parallel (first-touch placement) with non-zero data.
  pool.parallel_for(static_cast<int64_t>(n), 8, [&](int64_t b, int64_t e) {
    for (int64_t i = b; i < e; ++i) buf[static_cast<size_t>(i)] = static_cast<uint64_t>(i) * 2654435761u;
  });
  std::vector<uint64_t> sink(static_cast<size_t>(pool.size()));
  const auto threads = static_cast<size_t>(pool.size());
  BandwidthReading r;
  // Pass 0 is the warm-up (page tables, TLB, frequency); the timed passes follow it.
  for (int pass = 0; pass <= passes; ++pass) {
    const double t0 = now_seconds();
    pool.run([&](int t) {
      const auto i = static_cast<size_t>(t);
      const size_t b = n * i / threads / 32 * 32, e = n * (i + 1) / threads / 32 * 32;
      sink[i] += read_range(buf.get() + b, e - b);
    });
    const double gbs = static_cast<double>(n * sizeof(uint64_t)) / (now_seconds() - t0) / 1e9;
    if (pass == 0) continue;
    r.best_gbs = std::max(r.best_gbs, gbs);
    r.worst_gbs = r.passes == 0 ? gbs : std::min(r.worst_gbs, gbs);
    ++r.passes;
  }
  volatile uint64_t keep = 0;
  for (uint64_t s : sink) keep = keep + s;
  (void)keep;
  return r;
}

}  // namespace flashmem
