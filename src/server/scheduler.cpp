#include "server/scheduler.h"

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <optional>

#include "runtime/limits.h"
#include "server/prefix_cache.h"
#include "server/text_stream.h"
#include "util/timer.h"

namespace flashmem::server {

namespace {

ApiError shutting_down() {
  return ApiError(503, "server_error", "the server is shutting down", "", "shutting_down");
}

}  // namespace

ApiError request_timed_out(double timeout_seconds) {
  return ApiError(504, "server_error",
                  fmt::format("the request did not finish within the server's time limit of {} s "
                              "(--request-timeout); its sequence was freed",
                              timeout_seconds),
                  "", "request_timeout");
}

struct Scheduler::Active {
  Active(std::shared_ptr<GenerationJob> j, std::unique_ptr<Sequence> s, int64_t n_vocab)
      : job(std::move(j)), sequence(std::move(s)), sampler(job->input().sampling),
        text(job->input().stop), logits(static_cast<size_t>(n_vocab)) {
    usage.prompt_tokens = static_cast<int64_t>(job->input().prompt.size());
  }
  std::shared_ptr<GenerationJob> job;
  std::unique_ptr<Sequence> sequence;
  Sampler sampler;
  TextStream text;
  std::vector<float> logits;  // [n_vocab] of the last token fed
  size_t prompt_fed = 0;      // prompt tokens decoded so far (or attached from a kept prefix)
  int64_t keep_at = 0;        // prompt_fed at which the prefix is kept for reuse (0: never)
  int32_t next_token = 0;     // the token sampled last, fed in the next step
  JobUsage usage;
  double last_token_at = 0;   // now_seconds() of the previous token
  // The end, told to the job once its sequence is freed (so an answered client sees the
  // memory back in /metrics): a finish reason or an error.
  bool done = false;
  FinishReason reason = FinishReason::kStop;
  std::optional<ApiError> error;
};

Scheduler::Scheduler(Engine& engine, Metrics& metrics, SchedulerOptions options)
    : engine_(engine), metrics_(metrics), options_(std::move(options)) {
  if (options_.max_sequences < 1 || options_.max_sequences > kMaxSchedulerJobs)
    fail("--max-sequences must be in [1, {}], got {}", kMaxSchedulerJobs, options_.max_sequences);
  if (options_.max_queue < 0 || options_.max_queue > kMaxSchedulerJobs)
    fail("--max-queue must be in [0, {}], got {}", kMaxSchedulerJobs, options_.max_queue);
  if (!(options_.request_timeout_seconds >= 0))
    fail("--request-timeout must be >= 0 seconds (0: no limit), got {}", options_.request_timeout_seconds);
  // Options no sequence can be made with (lsa without an indexer, an unusable store) fail here,
  // not in every request.
  SequenceOptions probe = options_.sequence;
  probe.n_ctx = 1;
  { const Sequence check(engine_, probe); }
  if (options_.reuse_quota_bytes > 0 && options_.sequence.paged)
    prefix_cache_ = std::make_unique<PrefixCache>(engine_, options_.reuse_quota_bytes);
  thread_ = std::thread([this] { run(); });
}

Scheduler::~Scheduler() { stop(); }

void Scheduler::submit(std::shared_ptr<GenerationJob> job) {
  {
    std::lock_guard lock(mutex_);
    if (!accepting_) throw shutting_down();
    if (running_ + static_cast<int64_t>(queue_.size()) >= options_.max_sequences + options_.max_queue) {
      ApiError error(429, "rate_limit_exceeded",
                     fmt::format("the server is busy: {} requests are running and {} waiting (--max-queue); "
                                 "retry after {} s",
                                 running_, queue_.size(), kRetryAfterSeconds),
                     "", "queue_full");
      throw error;
    }
    queue_.push_back(std::move(job));
  }
  wake_.notify_one();
}

void Scheduler::cancel(GenerationJob& job) {
  job.cancel();
  std::lock_guard lock(mutex_);  // so the decode thread cannot miss the wake-up
  wake_.notify_one();
}

void Scheduler::stop(double grace_seconds) {
  {
    std::unique_lock lock(mutex_);
    accepting_ = false;
    idle_.wait_for(lock, std::chrono::duration<double>(grace_seconds),
                   [&] { return queue_.empty() && running_ == 0; });
    stopping_ = true;
  }
  wake_.notify_one();
  if (thread_.joinable()) thread_.join();
}

SequenceOptions Scheduler::sequence_options(const JobInput& input) const {
  SequenceOptions o = options_.sequence;
  o.n_ctx = static_cast<int64_t>(input.prompt.size()) + input.max_tokens;
  // full keeps every page: the server's --budget / --budget-tokens is for its policy
  if (input.full_attention && o.paged) o.paged = full_attention_options(*o.paged);
  return o;
}

void Scheduler::run() {
  for (;;) {
    {
      std::unique_lock lock(mutex_);
      wake_.wait(lock, [&] {
        const bool cancelled = std::any_of(queue_.begin(), queue_.end(), [](const auto& j) { return j->cancelled(); });
        return stopping_ || !active_.empty() || cancelled || (!queue_.empty() && !budget_blocked_);
      });
      if (stopping_) break;
    }
    drop_cancelled();
    expire_overdue();
    admit();
    publish_gauges();  // before the step: a job's first text never precedes its admission's figures
    if (!active_.empty()) step();
    retire_finished();
  }
  for (auto& a : active_) fail_job(*a, shutting_down());
  retire_finished();
  std::deque<std::shared_ptr<GenerationJob>> queued;
  {
    std::lock_guard lock(mutex_);
    queued.swap(queue_);
  }
  for (const auto& job : queued) {
    forget_handed_off(job->input());
    job->on_failed(shutting_down());
  }
  publish_gauges();
}

void Scheduler::drop_cancelled() {
  for (auto& a : active_)
    if (a->job->cancelled() && !a->done) finish(*a, FinishReason::kStop);
  std::lock_guard lock(mutex_);
  const size_t dropped = std::erase_if(queue_, [&](const auto& job) {
    if (!job->cancelled()) return false;
    forget_handed_off(job->input());
    job->on_finished(FinishReason::kStop, {});
    return true;
  });
  if (dropped > 0) budget_blocked_ = false;  // a new head may fit
}

void Scheduler::expire_overdue() {
  const double limit = options_.request_timeout_seconds;
  if (limit <= 0) return;
  const double now = now_seconds();
  auto overdue = [&](const GenerationJob& job) { return now - job.submitted_at() > limit; };
  for (auto& a : active_) {
    if (a->done || !overdue(*a->job)) continue;
    fail_job(*a, request_timed_out(limit));
    metrics_.count_timed_out();
  }
  std::lock_guard lock(mutex_);
  const size_t expired = std::erase_if(queue_, [&](const auto& job) {
    if (!overdue(*job)) return false;
    forget_handed_off(job->input());
    job->on_failed(request_timed_out(limit));
    metrics_.count_timed_out();
    return true;
  });
  if (expired > 0) budget_blocked_ = false;  // a new head may fit
}

void Scheduler::admit() {
  const int64_t n_vocab = engine_.model().config().n_vocab;
  while (static_cast<int64_t>(active_.size()) < options_.max_sequences && !budget_blocked_) {
    std::shared_ptr<GenerationJob> job;
    {
      std::lock_guard lock(mutex_);
      if (queue_.empty()) break;
      job = queue_.front();
    }
    // Leaving the queue and joining the running count is one step for submit()'s bound.
    auto pop = [&](bool admitted) {
      std::lock_guard lock(mutex_);
      queue_.pop_front();
      if (admitted) ++running_;
    };
    try {
      const std::vector<int32_t>& prompt = job->input().prompt;
      int64_t reused = 0;
      std::unique_ptr<Sequence> sequence;
      if (!job->input().attach_id.empty()) {
        sequence = attach_handed_off(job->input());
      } else if (prefix_cache_) {
        sequence = prefix_cache_->open_sequence(prompt, sequence_options(job->input()), &reused);
      } else {
        sequence = std::make_unique<Sequence>(engine_, sequence_options(job->input()));
      }
      active_.push_back(std::make_unique<Active>(job, std::move(sequence), n_vocab));
      Active& a = *active_.back();
      a.prompt_fed = static_cast<size_t>(reused + job->input().attach_tokens);
      a.usage.cached_tokens = reused;
      a.usage.handoff.prefilled_tokens = job->input().attach_tokens;
      a.usage.handoff.prefill_seconds = job->input().prefill_seconds;
      if (prefix_cache_) a.keep_at = prefix_cache_->keep_point(static_cast<int64_t>(prompt.size()), reused);
      pop(true);
      job->on_admitted();
    } catch (const KvBudgetError& e) {
      if (e.needed() <= e.limit()) {
        budget_blocked_ = true;  // fits once enough others end
        break;
      }
      pop(false);
      forget_handed_off(job->input());
      job->on_failed(ApiError(400, "invalid_request_error",
                              fmt::format("the request cannot fit the server's KV budget: {}", e.what()),
                              "max_tokens", "kv_budget_exceeded"));
    } catch (const ApiError& e) {
      pop(false);
      job->on_failed(e);
    } catch (const std::exception& e) {
      pop(false);
      job->on_failed(ApiError(500, "server_error", e.what()));
    }
  }
}

void Scheduler::step() {
  const auto max_batch = static_cast<size_t>(engine_.options().max_batch);
  std::vector<BatchItem> batch;
  std::vector<Active*> owners;  // [batch items] the job of each item
  size_t prompt_rows = 0;
  for (auto& a : active_) {
    if (a->done) continue;
    const std::vector<int32_t>& prompt = a->job->input().prompt;
    BatchItem item{a->sequence.get(), std::span<const int32_t>(&a->next_token, 1), a->logits.data(), false};
    if (a->prompt_fed < prompt.size()) {
      const size_t n = std::min(max_batch, prompt.size() - a->prompt_fed);
      if (prompt_rows > 0 && prompt_rows + n > max_batch) continue;  // its part waits a step
      prompt_rows += n;
      item.tokens = std::span<const int32_t>(prompt).subspan(a->prompt_fed, n);
      // A prefill server's job ends with its prompt open: the decode server feeds the last part.
      item.prompt_continues = a->prompt_fed + n < prompt.size() || !a->job->input().persist_id.empty();
      if (item.prompt_continues) item.logits = nullptr;
    }
    batch.push_back(item);
    owners.push_back(a.get());
  }
  if (batch.empty()) return;
  try {
    engine_.decode(batch);
  } catch (const std::exception& e) {
    // A failed pass leaves the sequences in it unusable: their jobs end with the error.
    for (Active* a : owners) fail_job(*a, ApiError(500, "server_error", e.what()));
    return;
  }
  const Tokenizer& tokenizer = engine_.tokenizer();
  const double now = now_seconds();
  for (size_t i = 0; i < batch.size(); ++i) {
    Active& a = *owners[i];
    if (batch[i].prompt_continues) {
      a.prompt_fed += batch[i].tokens.size();
      if (static_cast<int64_t>(a.prompt_fed) == a.keep_at) prefix_cache_->keep(*a.sequence, sequence_options(a.job->input()));
      if (a.prompt_fed == a.job->input().prompt.size()) persist_prefilled(a);
      continue;
    }
    a.prompt_fed = a.job->input().prompt.size();
    const int32_t token = a.sampler.sample(a.logits);
    if (a.usage.completion_tokens == 0 && a.usage.handoff.prefilled_tokens > 0) {
      a.usage.handoff.handoff_seconds = now - a.job->input().handed_off_at;
      metrics_.observe_handoff(a.usage.handoff.handoff_seconds);
    }
    if (tokenizer.is_eog(token)) {
      finish(a, FinishReason::kStop);
      continue;
    }
    if (a.usage.completion_tokens == 0) {
      metrics_.observe_time_to_first_token(now - a.job->submitted_at());
    } else {
      metrics_.observe_inter_token(now - a.last_token_at);
    }
    a.last_token_at = now;
    ++a.usage.completion_tokens;
    std::string text = a.text.push(tokenizer.token_to_piece(token));
    if (a.text.stopped()) {
      a.job->on_text(text, a.usage);
      finish(a, FinishReason::kStop);
    } else if (a.usage.completion_tokens == a.job->input().max_tokens) {
      a.job->on_text(text + a.text.finish(), a.usage);  // the last token needs no forward pass
      finish(a, FinishReason::kLength);
    } else {
      if (!text.empty()) a.job->on_text(text, a.usage);
      a.next_token = token;
    }
  }
}

std::unique_ptr<Sequence> Scheduler::attach_handed_off(const JobInput& input) {
  SequenceOptions options = sequence_options(input);
  options.attach = input.attach_id;
  std::unique_ptr<Sequence> sequence;
  try {
    sequence = std::make_unique<Sequence>(engine_, options);
  } catch (const KvBudgetError&) {
    throw;  // the entry waits in the store until the budget admits the job
  } catch (const Error& e) {
    forget_handed_off(input);
    throw ApiError(502, "server_error",
                   fmt::format("the sequence the prefill server persisted as '{}' cannot be attached: {}",
                               input.attach_id, e.what()),
                   "", "handoff_failed");
  }
  forget_handed_off(input);  // attaching copied its pages into the sequence's own store
  const std::vector<int32_t>& held = sequence->tokens();
  const auto n = static_cast<size_t>(input.attach_tokens);
  if (held.size() != n || !std::equal(held.begin(), held.end(), input.prompt.begin()))
    throw ApiError(502, "server_error",
                   fmt::format("the sequence the prefill server persisted as '{}' holds other tokens than "
                               "this request's prompt",
                               input.attach_id),
                   "", "handoff_failed");
  return sequence;
}

void Scheduler::forget_handed_off(const JobInput& input) {
  if (input.attach_id.empty()) return;
  try {
    engine_.forget_sequence(input.attach_id);
  } catch (const Error& e) {
    std::fprintf(stderr, "flashmem serve: cannot delete the handed-off sequence %s: %s\n", input.attach_id.c_str(),
                 e.what());
  }
}

void Scheduler::persist_prefilled(Active& a) {
  const std::string& id = a.job->input().persist_id;
  if (id.empty()) return;
  try {
    a.sequence->persist(id);
  } catch (const Error& e) {
    fail_job(a, ApiError(503, "server_error",
                         fmt::format("the prefilled sequence cannot be persisted in the slow tier: {}", e.what()),
                         "", "persist_failed"));
    return;
  }
  finish(a, FinishReason::kStop);
}

void Scheduler::finish(Active& a, FinishReason reason) {
  a.done = true;
  a.reason = reason;
}

void Scheduler::fail_job(Active& a, const ApiError& error) {
  a.done = true;
  a.error = error;
}

void Scheduler::retire_finished() {
  std::vector<std::unique_ptr<Active>> ended;
  for (auto& a : active_)
    if (a->done) ended.push_back(std::move(a));
  if (ended.empty()) return;
  std::erase(active_, nullptr);
  budget_blocked_ = false;
  for (auto& a : ended) {
    a->usage.memory = memory_of(*a);
    metrics_.add_tokens(a->usage.prompt_tokens, a->usage.completion_tokens);
    if (const auto stats = a->sequence->lsa_stats()) {
      retired_recall_bytes_ += stats->recall_bytes_total;
      retired_recall_misses_ += stats->recall_misses;
    }
    a->sequence.reset();  // its KV cells and slow-tier file are freed now
  }
  {
    std::lock_guard lock(mutex_);
    running_ = static_cast<int64_t>(active_.size());
  }
  publish_gauges();
  for (auto& a : ended) {
    if (a->error) {
      a->job->on_failed(*a->error);
    } else {
      a->job->on_finished(a->reason, a->usage);
    }
  }
  idle_.notify_all();
}

JobMemory Scheduler::memory_of(const Active& a) const {
  const Sequence& s = *a.sequence;
  JobMemory m;
  if (const auto& paged = options_.sequence.paged)  // "full" as sequence_options() makes it
    m.policy = a.job->input().full_attention ? "full" : to_string(paged->policy);
  m.kv_reserved_bytes = s.reserved_kv_bytes();
  m.kv_resident_bytes = s.resident_kv_bytes();
  m.kv_history_bytes = static_cast<uint64_t>(kv_bytes(engine_.model().config(), s.n_past(), s.kv_type()));
  if (const auto stats = s.lsa_stats()) {
    m.pages_recalled = stats->recall_misses;
    m.recall_bytes = stats->recall_bytes_total;
  }
  return m;
}

void Scheduler::publish_gauges() {
  SchedulerGauges g;
  g.active_sequences = static_cast<int64_t>(active_.size());
  g.recall_bytes_total = retired_recall_bytes_;
  g.recall_misses_total = retired_recall_misses_;
  for (const auto& a : active_) {
    const JobMemory m = memory_of(*a);
    g.kv_reserved_bytes += m.kv_reserved_bytes;
    g.kv_resident_bytes += m.kv_resident_bytes;
    g.kv_history_bytes += m.kv_history_bytes;
    g.recall_bytes_total += m.recall_bytes;
    g.recall_misses_total += m.pages_recalled;
    if (const PagedKv* paged = a->sequence->paged(); paged && paged->kv_store().pages_in_place())
      g.slow_tier_ram_bytes += paged->kv_store().bytes_written();
  }
  {
    std::lock_guard lock(mutex_);
    g.queue_length = static_cast<int64_t>(queue_.size());
  }
  metrics_.set_gauges(g);
}

}  // namespace flashmem::server
