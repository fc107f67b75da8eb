// RecallWorker: one background thread that copies pages from the slow tier (KvStore) into
// resident-pool cells, so recall overlaps decode (DESIGN.md "Two tiers"). It knows nothing about
// the pool's tables: it runs (page -> dst) copies in FIFO order and reports each outcome.
#pragma once
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <functional>
#include <mutex>
#include <span>
#include <thread>
#include <vector>

#include "kv/kv_store.h"

namespace flashmem {

struct RecallJob {
  int64_t page = -1;        // logical page to read from the store
  int32_t cell = -1;        // destination cell (opaque to the worker)
  uint64_t generation = 0;  // the cell's generation when the job was made (stale-job check)
  uint8_t* dst = nullptr;   // [page_bytes] destination bytes, untouched by anyone else until done
};

class RecallWorker {
 public:
  // Called on the worker thread after each copy, with no worker lock held. On kOk, dst holds the
  // page; on any other status dst is unspecified. It may take the caller's own locks (the caller
  // must then never wait for the worker while holding them, see cancel_if).
  using DoneFn = std::function<void(const RecallJob& job, StoreStatus status)>;

  // Starts the thread. `store` must outlive the worker.
  RecallWorker(KvStore& store, DoneFn on_done);
  // shutdown().
  ~RecallWorker();
  RecallWorker(const RecallWorker&) = delete;
  RecallWorker& operator=(const RecallWorker&) = delete;

  // Queues the jobs (after those already queued). Throws Error after shutdown().
  void submit(std::span<const RecallJob> jobs);

  // Removes the queued, not yet started jobs for which drop(job) is true and returns them; their
  // dst is never touched. A job already started is not affected: it completes and reaches
  // on_done. Never blocks on a copy, so it may be called while holding locks that on_done takes.
  std::vector<RecallJob> cancel_if(const std::function<bool(const RecallJob&)>& drop);

  // Blocks until the queue is empty and no copy is running. Must not be called while holding a
  // lock that on_done takes.
  void wait_idle();

  // Stops the thread: drops the queued jobs (returned, never started), waits for the running copy
  // (its on_done still runs), joins. Idempotent. Same locking rule as wait_idle().
  std::vector<RecallJob> shutdown();

  size_t queued() const;

 private:
  void run();

  KvStore& store_;
  DoneFn on_done_;
  mutable std::mutex mutex_;
  std::condition_variable work_cv_;   // signals new jobs or stop
  std::condition_variable idle_cv_;   // signals "queue empty and no copy running"
  std::deque<RecallJob> queue_;       // FIFO of jobs not yet started
  bool busy_ = false;                 // a copy is running outside the lock
  bool stop_ = false;
  std::thread thread_;                // last: started after every member above exists
};

}  // namespace flashmem
