// Measures the machine's memory read bandwidth, the physical limit of decode speed.
#pragma once
#include <cstddef>

#include "util/thread_pool.h"

namespace flashmem {

// The best and worst of a probe's timed passes, in GB/s (1e9 bytes/s).
struct BandwidthReading {
  double best_gbs = 0;
  double worst_gbs = 0;
  int passes = 0;
};

// Streams a `bytes`-sized buffer (much larger than the caches) with every thread of `pool`,
// `passes` times after one untimed warm-up pass. The loop is the same instructions in every build
// (256-bit loads: AVX2 is the oldest path we build, and 256-bit loads already saturate DRAM), so
// the floor it gives belongs to the machine, not to the kernel path under test.
BandwidthReading measure_read_bandwidth(ThreadPool& pool, size_t bytes = size_t{512} << 20, int passes = 8);

}  // namespace flashmem
