// Continuous batching on one decode thread. Every step is one Engine::decode: one token of every
// sequence that is generating, plus the next prompt part of sequences still reading their prompt
// (parts of max_batch tokens, at most max_batch prompt rows per step, so a long prompt never
// stalls the others' tokens for more than one chunk's time). A prompt fed in parts gives the
// bits of one call (BatchItem::prompt_continues), so a request's output does not depend on what
// else is running.
//
// Admission, first come first served: a queued job gets a Sequence when fewer than
// max_sequences run and the engine's resident-KV budget holds the sequence's reservation (a
// contiguous cache or policy `full`: its whole KV; a selection policy: its resident pool). A job
// that does not fit waits until a sequence ends; one that no empty engine could hold is refused.
// At most max_sequences + max_queue jobs are in the scheduler at once: submit() beyond that is a
// 429.
//
// Threads: submit() and cancel() from any thread; the engine and every Sequence only on the
// decode thread (include/flashmem/engine.h).
#pragma once
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <memory>
#include <mutex>
#include <thread>
#include <vector>

#include "flashmem/engine.h"
#include "flashmem/sequence.h"
#include "server/generation_job.h"
#include "server/metrics.h"

namespace flashmem::server {

class PrefixCache;

// A 429's Retry-After: the queue moves at decode speed, and a job ending frees a place at once.
inline constexpr int kRetryAfterSeconds = 1;
// Most running or waiting jobs of each kind: every one holds an HTTP thread (8 MiB of stack
// address space), so 4096 of each stay far below the process's thread and memory limits.
inline constexpr int64_t kMaxSchedulerJobs = 4096;

struct SchedulerOptions {
  int64_t max_sequences = 1;  // jobs holding a sequence at once (>= 1)
  int64_t max_queue = 0;      // jobs waiting for admission (>= 0)
  // Every job's sequence: the server's policy and KV type; n_ctx becomes the job's
  // prompt + max_tokens.
  SequenceOptions sequence;
  // A job still queued or running this many seconds after it arrived fails with
  // request_timed_out() and its sequence is freed (0: no limit).
  double request_timeout_seconds = 0;
  // Conversation reuse (server/prefix_cache.h): disk bytes the kept prompt prefixes may take;
  // 0 = off. Needs a paged sequence and a disk slow tier.
  uint64_t reuse_quota_bytes = 0;
};

// The error of a job that ran out of SchedulerOptions::request_timeout_seconds: 504, code
// "request_timeout" (the routes tell OpenAI clients not to retry it: it would time out again).
ApiError request_timed_out(double timeout_seconds);

class Scheduler {
 public:
  // Starts the decode thread. `engine` and `metrics` must outlive the scheduler; from now on the
  // engine is this scheduler's (decode() and sequences on its thread only). Throws Error on bad
  // limits and when options.sequence cannot make a sequence (checked with a one-token one).
  Scheduler(Engine& engine, Metrics& metrics, SchedulerOptions options);
  ~Scheduler();
  Scheduler(const Scheduler&) = delete;
  Scheduler& operator=(const Scheduler&) = delete;

  // Queues `job`. Throws ApiError 429 when the queue is full, 503 once stopping.
  void submit(std::shared_ptr<GenerationJob> job);
  // Cancels `job` (queued or running): its sequence is freed at the next step.
  void cancel(GenerationJob& job);
  // Stops accepting jobs; waits up to `grace_seconds` for the queued and running ones to end,
  // then fails the rest with 503 and joins the decode thread. Idempotent.
  void stop(double grace_seconds = 0);

 private:
  struct Active;
  void run();
  void drop_cancelled();
  void expire_overdue();  // fails the jobs past request_timeout_seconds
  void admit();
  void step();
  void finish(Active& a, FinishReason reason);
  void fail_job(Active& a, const ApiError& error);
  void retire_finished();
  void publish_gauges();
  SequenceOptions sequence_options(const JobInput& input) const;
  // --role decode: the job's sequence attached to the entry its prefill server persisted (then
  // deleted). KvBudgetError propagates (the job waits); anything else is a 502 "handoff_failed".
  std::unique_ptr<Sequence> attach_handed_off(const JobInput& input);
  void forget_handed_off(const JobInput& input);  // deletes its entry, if any (errors reported)
  // --role prefill: persists a job's sequence once its whole prompt is in, and ends the job.
  void persist_prefilled(Active& a);
  JobMemory memory_of(const Active& a) const;  // before its sequence is freed

  Engine& engine_;
  Metrics& metrics_;
  const SchedulerOptions options_;

  std::mutex mutex_;  // guards queue_, running_, accepting_, stopping_
  std::condition_variable wake_;  // the decode thread waits for work or stop
  std::condition_variable idle_;  // stop() waits for the last job to end
  std::deque<std::shared_ptr<GenerationJob>> queue_;
  int64_t running_ = 0;  // active_.size(), for other threads
  bool accepting_ = true;
  bool stopping_ = false;

  // Decode thread only.
  std::vector<std::unique_ptr<Active>> active_;
  bool budget_blocked_ = false;  // the queue's head did not fit; retried after a sequence ends
  uint64_t retired_recall_bytes_ = 0, retired_recall_misses_ = 0;  // of ended sequences
  std::unique_ptr<PrefixCache> prefix_cache_;  // null when reuse is off
  std::thread thread_;
};

}  // namespace flashmem::server
