#include "kv/recall_worker.h"

#include <algorithm>

#include "util/error.h"

namespace flashmem {

RecallWorker::RecallWorker(KvStore& store, DoneFn on_done)
    : store_(store), on_done_(std::move(on_done)), thread_([this] { run(); }) {}

RecallWorker::~RecallWorker() { shutdown(); }

void RecallWorker::submit(std::span<const RecallJob> jobs) {
  if (jobs.empty()) return;
  {
    std::lock_guard lock(mutex_);
    if (stop_) fail("recall worker used after shutdown");
    queue_.insert(queue_.end(), jobs.begin(), jobs.end());
  }
  work_cv_.notify_one();
}

std::vector<RecallJob> RecallWorker::cancel_if(const std::function<bool(const RecallJob&)>& drop) {
  std::vector<RecallJob> dropped;
  std::lock_guard lock(mutex_);
  std::deque<RecallJob> kept;
  for (const RecallJob& job : queue_) (drop(job) ? dropped.push_back(job) : kept.push_back(job));
  queue_.swap(kept);
  if (queue_.empty() && !busy_) idle_cv_.notify_all();
  return dropped;
}

void RecallWorker::wait_idle() {
  std::unique_lock lock(mutex_);
  idle_cv_.wait(lock, [this] { return queue_.empty() && !busy_; });
}

size_t RecallWorker::queued() const {
  std::lock_guard lock(mutex_);
  return queue_.size();
}

std::vector<RecallJob> RecallWorker::shutdown() {
  std::vector<RecallJob> dropped;
  {
    std::lock_guard lock(mutex_);
    stop_ = true;
    dropped.assign(queue_.begin(), queue_.end());
    queue_.clear();
  }
  work_cv_.notify_all();
  if (thread_.joinable()) thread_.join();
  return dropped;
}

void RecallWorker::run() {
  const size_t batch = std::max<size_t>(1, store_.recall_batch_pages());
  std::vector<RecallJob> jobs;          // [batch] taken from the queue together
  std::vector<int64_t> pages;           // [batch]
  std::vector<uint8_t*> dst;            // [batch]
  std::vector<StoreStatus> status;      // [batch]
  for (;;) {
    {
      std::unique_lock lock(mutex_);
      work_cv_.wait(lock, [this] { return stop_ || !queue_.empty(); });
      if (stop_) return;
      jobs.clear();
      while (!queue_.empty() && jobs.size() < batch) {
        jobs.push_back(queue_.front());
        queue_.pop_front();
      }
      busy_ = true;
    }
    // The copies and the reports run without the worker lock: cancel_if never waits for a copy.
    pages.resize(jobs.size());
    dst.resize(jobs.size());
    status.resize(jobs.size());
    for (size_t i = 0; i < jobs.size(); ++i) {
      pages[i] = jobs[i].page;
      dst[i] = jobs[i].dst;
    }
    store_.read_pages(pages, dst, status);
    for (size_t i = 0; i < jobs.size(); ++i) on_done_(jobs[i], status[i]);
    {
      std::lock_guard lock(mutex_);
      busy_ = false;
      if (queue_.empty()) idle_cv_.notify_all();
    }
  }
}

}  // namespace flashmem
