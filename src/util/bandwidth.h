// Measures the machine's memory read bandwidth, the physical limit of decode speed.
#pragma once
#include <cstddef>

#include "util/thread_pool.h"

namespace flashmem {

// Streams a `bytes`-sized buffer (much larger than the caches) with every thread of `pool`,
// `repeats` times, and returns the best read rate in GB/s (1e9 bytes/s).
double measure_read_bandwidth_gbs(ThreadPool& pool, size_t bytes = size_t{512} << 20, int repeats = 5);

}  // namespace flashmem
