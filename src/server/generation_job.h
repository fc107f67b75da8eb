// One request's generation, shared by the HTTP thread that waits for it and the scheduler thread
// that runs it: the input, fixed at creation, and what has come out so far. The scheduler
// reports admission, text and the end; the HTTP side takes the news with wait() and may cancel
// (client gone), after which the scheduler frees the job's sequence at its next step.
#pragma once
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "model/sampler.h"
#include "server/api_error.h"

namespace flashmem::server {

enum class FinishReason { kStop, kLength };
const char* to_string(FinishReason reason);  // "stop" | "length" (OpenAI's finish_reason)

struct JobInput {
  std::vector<int32_t> prompt;  // non-empty token ids
  int64_t max_tokens = 1;       // >= 1; prompt + max_tokens fit the server's context
  SamplerOptions sampling;
  std::vector<std::string> stop;
  bool full_attention = false;  // the whole KV resident instead of the server's policy
  // --role prefill (server/role.h): prefill the whole prompt, persist the sequence under this id
  // and end without generating.
  std::string persist_id = {};
  // --role decode: the prompt's first attach_tokens tokens are the entry a prefill server
  // persisted under attach_id; the scheduler attaches it (and deletes the entry) instead of
  // prefilling them.
  std::string attach_id = {};
  int64_t attach_tokens = 0;
  double prefill_seconds = 0;  // the prefill server's time for them
  double handed_off_at = 0;    // now_seconds() when its answer arrived
  double arrived_at = 0;       // now_seconds() when the request arrived; 0: the job's creation
};

// A request's KV memory when its sequence ended: what the page at / shows per conversation.
struct JobMemory {
  std::string policy = "none";     // the sequence's policy spec; "none": the contiguous cache
  uint64_t kv_reserved_bytes = 0;  // KV cells it reserved against the server's budget
  uint64_t kv_resident_bytes = 0;  // of which held pages at the end
  uint64_t kv_history_bytes = 0;   // K+V of every position it held: what full attention keeps
  uint64_t pages_recalled = 0;     // pages brought back from the slow tier
  uint64_t recall_bytes = 0;       // their bytes
};

// How a handed-off request's prompt was prefilled (--role decode).
struct JobHandoff {
  int64_t prefilled_tokens = 0;  // prompt tokens the prefill server prefilled (0: not handed off)
  double prefill_seconds = 0;    // its time for them
  double handoff_seconds = 0;    // from its answer's arrival to this server's first token
};

struct JobUsage {
  int64_t prompt_tokens = 0;
  int64_t completion_tokens = 0;
  JobMemory memory;  // set when the job finishes
  int64_t cached_tokens = 0;  // prompt tokens attached from a kept prefix, not prefilled
  JobHandoff handoff;
};

// The news since the previous wait().
struct JobUpdate {
  bool admitted = false;  // the job holds a sequence (stays true)
  std::string text;       // text handed out since the previous update
  bool finished = false;  // no more text will come (stays true)
  FinishReason finish_reason = FinishReason::kStop;
  std::optional<ApiError> error;  // the job failed (finished is true)
  JobUsage usage;         // so far
};

class GenerationJob {
 public:
  explicit GenerationJob(JobInput input);
  const JobInput& input() const { return input_; }
  double submitted_at() const { return submitted_at_; }  // input().arrived_at, else now_seconds() at creation

  // HTTP side. Waits up to `timeout` for news; returns at once when there is some.
  JobUpdate wait(std::chrono::milliseconds timeout);
  void cancel() { cancelled_.store(true, std::memory_order_relaxed); }
  bool cancelled() const { return cancelled_.load(std::memory_order_relaxed); }

  // Scheduler side.
  void on_admitted();
  void on_text(std::string_view text, const JobUsage& usage);
  void on_finished(FinishReason reason, const JobUsage& usage);
  void on_failed(const ApiError& error);

 private:
  void notify_locked();

  const JobInput input_;
  const double submitted_at_;
  std::atomic<bool> cancelled_{false};
  std::mutex mutex_;  // guards everything below
  std::condition_variable changed_;
  bool news_ = false;     // something happened since the last wait()
  bool admitted_ = false, finished_ = false;
  std::string text_;      // not yet taken by wait()
  FinishReason reason_ = FinishReason::kStop;
  std::optional<ApiError> error_;
  JobUsage usage_;
};

}  // namespace flashmem::server
