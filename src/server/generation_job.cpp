#include "server/generation_job.h"

#include "util/timer.h"

namespace flashmem::server {

const char* to_string(FinishReason reason) { return reason == FinishReason::kStop ? "stop" : "length"; }

GenerationJob::GenerationJob(JobInput input)
    : input_(std::move(input)), submitted_at_(input_.arrived_at > 0 ? input_.arrived_at : now_seconds()) {}

JobUpdate GenerationJob::wait(std::chrono::milliseconds timeout) {
  std::unique_lock lock(mutex_);
  changed_.wait_for(lock, timeout, [&] { return news_; });
  news_ = false;
  JobUpdate u;
  u.admitted = admitted_;
  u.text.swap(text_);
  u.finished = finished_;
  u.finish_reason = reason_;
  u.error = error_;
  u.usage = usage_;
  return u;
}

void GenerationJob::notify_locked() {
  news_ = true;
  changed_.notify_all();
}

void GenerationJob::on_admitted() {
  std::lock_guard lock(mutex_);
  admitted_ = true;
  notify_locked();
}

void GenerationJob::on_text(std::string_view text, const JobUsage& usage) {
  std::lock_guard lock(mutex_);
  text_.append(text);
  usage_ = usage;
  notify_locked();
}

void GenerationJob::on_finished(FinishReason reason, const JobUsage& usage) {
  std::lock_guard lock(mutex_);
  admitted_ = finished_ = true;
  reason_ = reason;
  usage_ = usage;
  notify_locked();
}

void GenerationJob::on_failed(const ApiError& error) {
  std::lock_guard lock(mutex_);
  admitted_ = finished_ = true;
  error_ = error;
  notify_locked();
}

}  // namespace flashmem::server
