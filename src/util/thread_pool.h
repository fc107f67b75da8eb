// A fixed pool of worker threads for data-parallel kernels. Decode calls it ~100 times per token,
// so dispatch must cost well under a microsecond: workers spin briefly on a generation counter
// before sleeping on it (std::atomic::wait), and the caller takes part in the work.
//
// Work is split into parts that any thread may claim from an atomic counter, and the caller
// waits only for parts that were claimed. On a busy machine a worker the OS has paused simply
// finds nothing left when it wakes, instead of costing every dispatch a scheduling slice.
#pragma once
#include <atomic>
#include <cstdint>
#include <functional>
#include <thread>
#include <vector>

namespace flashmem {

class ThreadPool {
 public:
  // Starts a thread running `body` (std::thread's constructor by default; tests inject failures).
  using ThreadStarter = std::function<std::thread(std::function<void()> body)>;

  // n_threads counts the calling thread; n_threads <= 1 runs everything inline. Throws Error if a
  // worker thread cannot be started (EAGAIN: thread limit, memory), after stopping and joining the
  // workers already started.
  explicit ThreadPool(int n_threads, const ThreadStarter& start_thread = nullptr);
  ~ThreadPool();
  ThreadPool(const ThreadPool&) = delete;
  ThreadPool& operator=(const ThreadPool&) = delete;

  int size() const { return n_threads_; }

  // Runs fn(part) for every part in [0, size()), each exactly once, on whichever threads claim
  // them (possibly several parts on one thread, one after the other); returns when all are done.
  // Not re-entrant: fn must not call run() on the same pool.
  void run(const std::function<void(int part)>& fn);

  // Splits [0, n) into one contiguous range per thread, boundaries multiples of `grain`, and
  // calls fn(begin, end) for each non-empty range.
  void parallel_for(int64_t n, int64_t grain, const std::function<void(int64_t begin, int64_t end)>& fn);

  // Number of hardware threads (at least 1).
  static int default_threads();

 private:
  void worker_loop();
  // Wakes every worker with stop_ set and joins it.
  void stop_workers();
  // Claims and runs parts of dispatch `generation` until none is left.
  void work(uint32_t generation);

  int n_threads_;
  std::vector<std::thread> workers_;
  std::atomic<const std::function<void(int)>*> job_{nullptr};
  std::atomic<int> n_parts_{0};
  std::atomic<uint64_t> claim_{0};   // (generation << 32) | next part to claim
  std::atomic<int> done_{0};         // parts finished in the current generation
  std::atomic<uint32_t> generation_{0};
  std::atomic<bool> stop_{false};
};

// pool->parallel_for(n, grain, fn), or fn(0, n) on the calling thread when pool is null: the
// dispatch every kernel that takes an optional pool makes.
void parallel_for(ThreadPool* pool, int64_t n, int64_t grain, const std::function<void(int64_t begin, int64_t end)>& fn);

}  // namespace flashmem
