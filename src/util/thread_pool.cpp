#include "util/thread_pool.h"

#include <algorithm>

#if defined(__x86_64__)
#include <immintrin.h>
#endif

#include "util/error.h"

namespace flashmem {
namespace {

inline void cpu_relax() {
#if defined(__x86_64__)
  _mm_pause();
#else
  std::this_thread::yield();
#endif
}

// ~50 us of spinning (pause is ~40-140 cycles): longer than the gaps between the kernels of one
// decode step, so a busy pool never sleeps, yet short enough that on an oversubscribed machine
// (parallel ctest, other jobs) waiting threads give their core back quickly.
constexpr int kSpinLimit = 1 << 11;

}  // namespace

ThreadPool::ThreadPool(int n_threads, const ThreadStarter& start_thread)
    : n_threads_(std::max(1, n_threads)) {
  workers_.reserve(n_threads_ - 1);
  try {
    for (int i = 1; i < n_threads_; ++i) {
      auto body = [this] { worker_loop(); };
      workers_.push_back(start_thread ? start_thread(body) : std::thread(body));
    }
  } catch (const std::exception& e) {  // std::system_error, std::bad_alloc
    // No destructor runs for a constructor that throws: joinable threads left in workers_ would
    // call std::terminate.
    const size_t started = workers_.size();
    stop_workers();
    fail("cannot start worker thread {} of {}: {} (try fewer threads)", started + 1,
         n_threads_ - 1, e.what());
  }
}

ThreadPool::~ThreadPool() { stop_workers(); }

void ThreadPool::stop_workers() {
  stop_.store(true, std::memory_order_release);
  generation_.fetch_add(1, std::memory_order_acq_rel);
  generation_.notify_all();
  for (auto& t : workers_) t.join();
}

int ThreadPool::default_threads() {
  unsigned n = std::thread::hardware_concurrency();
  return n == 0 ? 1 : static_cast<int>(n);
}

void ThreadPool::work(uint32_t generation) {
  uint64_t v = claim_.load(std::memory_order_acquire);
  for (;;) {
    if (static_cast<uint32_t>(v >> 32) != generation) return;  // a later dispatch: not ours
    const auto part = static_cast<int>(v & 0xffffffffu);
    if (part >= n_parts_.load(std::memory_order_acquire)) return;
    if (!claim_.compare_exchange_weak(v, v + 1, std::memory_order_acq_rel)) continue;
    // The dispatch cannot finish (nor job_ change) before this claimed part is done.
    (*job_.load(std::memory_order_acquire))(part);
    done_.fetch_add(1, std::memory_order_acq_rel);
    v = claim_.load(std::memory_order_acquire);
  }
}

void ThreadPool::worker_loop() {
  uint32_t seen = 0;
  for (;;) {
    uint32_t g;
    int spins = 0;
    while ((g = generation_.load(std::memory_order_acquire)) == seen) {
      if (++spins < kSpinLimit) {
        cpu_relax();
      } else {
        generation_.wait(seen, std::memory_order_acquire);
      }
    }
    seen = g;
    if (stop_.load(std::memory_order_acquire)) return;
    work(g);
  }
}

void ThreadPool::run(const std::function<void(int)>& fn) {
  if (n_threads_ == 1) {
    fn(0);
    return;
  }
  const uint32_t g = generation_.load(std::memory_order_relaxed) + 1;
  job_.store(&fn, std::memory_order_release);
  n_parts_.store(n_threads_, std::memory_order_release);
  done_.store(0, std::memory_order_release);
  claim_.store(static_cast<uint64_t>(g) << 32, std::memory_order_release);
  generation_.store(g, std::memory_order_release);
  generation_.notify_all();
  work(g);
  // Wait for parts other threads claimed; yield when that takes long, so an oversubscribed
  // machine can schedule the worker we are waiting for.
  for (int spins = 0; done_.load(std::memory_order_acquire) != n_threads_; ++spins) {
    if (spins < kSpinLimit) {
      cpu_relax();
    } else {
      std::this_thread::yield();
    }
  }
}

void ThreadPool::parallel_for(int64_t n, int64_t grain,
                              const std::function<void(int64_t, int64_t)>& fn) {
  if (n <= 0) return;
  grain = std::max<int64_t>(1, grain);
  const int64_t n_grains = (n + grain - 1) / grain;
  const int64_t parts = std::min<int64_t>(n_threads_, n_grains);
  if (parts <= 1) {
    fn(0, n);
    return;
  }
  run([&](int t) {
    if (t >= parts) return;
    const int64_t g0 = n_grains * t / parts, g1 = n_grains * (t + 1) / parts;
    const int64_t begin = g0 * grain, end = std::min(n, g1 * grain);
    if (begin < end) fn(begin, end);
  });
}

void parallel_for(ThreadPool* pool, int64_t n, int64_t grain, const std::function<void(int64_t, int64_t)>& fn) {
  if (pool == nullptr) {
    if (n > 0) fn(0, n);
    return;
  }
  pool->parallel_for(n, grain, fn);  // runs fn(0, n) inline on a pool of one thread
}

}  // namespace flashmem
