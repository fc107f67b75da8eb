// A fixed pool of worker threads for data-parallel kernels. Decode calls it ~100 times per token,
// so dispatch must cost well under a microsecond: workers spin briefly on a generation counter
// before sleeping on it (std::atomic::wait), and the caller takes part in the work.
#pragma once
#include <atomic>
#include <cstdint>
#include <functional>
#include <thread>
#include <vector>

namespace flashmem {

class ThreadPool {
 public:
  // n_threads counts the calling thread; n_threads <= 1 runs everything inline.
  explicit ThreadPool(int n_threads);
  ~ThreadPool();
  ThreadPool(const ThreadPool&) = delete;
  ThreadPool& operator=(const ThreadPool&) = delete;

  int size() const { return n_threads_; }

  // Runs fn(thread_index) once on every thread (the caller is index 0); returns when all are
  // done. Not re-entrant: fn must not call run() on the same pool.
  void run(const std::function<void(int thread_index)>& fn);

  // Splits [0, n) into one contiguous range per thread, boundaries multiples of `grain`, and
  // calls fn(begin, end) for each non-empty range.
  void parallel_for(int64_t n, int64_t grain, const std::function<void(int64_t begin, int64_t end)>& fn);

  // Number of hardware threads (at least 1).
  static int default_threads();

 private:
  void worker_loop(int index);

  int n_threads_;
  std::vector<std::thread> workers_;
  const std::function<void(int)>* job_ = nullptr;
  std::atomic<uint64_t> generation_{0};
  std::atomic<int> pending_{0};
  std::atomic<bool> stop_{false};
};

}  // namespace flashmem
