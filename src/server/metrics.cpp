#include "server/metrics.h"

#include <fmt/format.h>

#include <algorithm>

namespace flashmem::server {

namespace {

// Time to first token: from a short prompt of a small model (~10 ms) to a long prefill of a
// large one on a CPU (a minute).
const std::vector<double> kTtftBounds = {0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60};
// Between tokens: from a small model alone (~1 ms) to a large one in a full batch (~1 s).
const std::vector<double> kInterTokenBounds = {0.001, 0.0025, 0.005, 0.01, 0.025, 0.05,
                                               0.1,   0.25,   0.5,   1,    2.5};

// Hand-off (--role decode): attaching a persisted sequence copies its pages (a few ms for a
// small model's short prompt, seconds for a long context of a large one over a network) before
// the first token.
const std::vector<double> kHandoffBounds = {0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30};

void header(std::string& out, const std::string& name, const char* type, const std::string& help) {
  out += fmt::format("# HELP {} {}\n# TYPE {} {}\n", name, help, name, type);
}

template <typename T>
void single(std::string& out, const std::string& name, const char* type, const std::string& help, T value) {
  header(out, name, type, help);
  out += fmt::format("{} {}\n", name, value);
}

}  // namespace

Histogram::Histogram(std::vector<double> bounds) : bounds_(std::move(bounds)), counts_(bounds_.size() + 1) {}

void Histogram::observe(double value) {
  const auto bucket = std::lower_bound(bounds_.begin(), bounds_.end(), value) - bounds_.begin();
  ++counts_[static_cast<size_t>(bucket)];
  sum_ += value;
  ++count_;
}

void Histogram::render(std::string& out, const std::string& name, const std::string& help) const {
  header(out, name, "histogram", help);
  uint64_t cumulative = 0;
  for (size_t i = 0; i < bounds_.size(); ++i) {
    cumulative += counts_[i];
    out += fmt::format("{}_bucket{{le=\"{}\"}} {}\n", name, bounds_[i], cumulative);
  }
  out += fmt::format("{}_bucket{{le=\"+Inf\"}} {}\n{}_sum {}\n{}_count {}\n", name, count_, name, sum_,
                     name, count_);
}

Metrics::Metrics() : ttft_(kTtftBounds), inter_token_(kInterTokenBounds), handoff_(kHandoffBounds) {}

void Metrics::count_request(const std::string& route, int status) {
  std::lock_guard lock(mutex_);
  ++requests_[{route, status}];
}

void Metrics::count_rejected() {
  std::lock_guard lock(mutex_);
  ++rejected_;
}

void Metrics::count_timed_out() {
  std::lock_guard lock(mutex_);
  ++timed_out_;
}

void Metrics::add_tokens(int64_t prompt_tokens, int64_t completion_tokens) {
  std::lock_guard lock(mutex_);
  prompt_tokens_ += static_cast<uint64_t>(prompt_tokens);
  completion_tokens_ += static_cast<uint64_t>(completion_tokens);
}

void Metrics::observe_time_to_first_token(double seconds) {
  std::lock_guard lock(mutex_);
  ttft_.observe(seconds);
}

void Metrics::observe_inter_token(double seconds) {
  std::lock_guard lock(mutex_);
  inter_token_.observe(seconds);
}

void Metrics::observe_handoff(double seconds) {
  std::lock_guard lock(mutex_);
  handoff_.observe(seconds);
}

void Metrics::set_gauges(const SchedulerGauges& gauges) {
  std::lock_guard lock(mutex_);
  gauges_ = gauges;
}

SchedulerGauges Metrics::gauges() const {
  std::lock_guard lock(mutex_);
  return gauges_;
}

std::string Metrics::render(const MemoryFacts& facts) const {
  std::lock_guard lock(mutex_);
  std::string out;
  header(out, "flashmem_requests_total", "counter", "HTTP requests answered, by route and status");
  for (const auto& [key, count] : requests_)
    out += fmt::format("flashmem_requests_total{{route=\"{}\",status=\"{}\"}} {}\n", key.first, key.second, count);
  single(out, "flashmem_requests_rejected_total", "counter", "requests refused with 429 (queue full)", rejected_);
  single(out, "flashmem_requests_timed_out_total", "counter",
         "requests failed by --request-timeout (a streamed one ends with an error event after status 200)",
         timed_out_);
  single(out, "flashmem_prompt_tokens_total", "counter", "prompt tokens of finished requests", prompt_tokens_);
  single(out, "flashmem_completion_tokens_total", "counter", "tokens generated", completion_tokens_);
  const SchedulerGauges& g = gauges_;
  single(out, "flashmem_queue_length", "gauge", "requests waiting for admission", g.queue_length);
  single(out, "flashmem_active_sequences", "gauge", "requests holding a sequence", g.active_sequences);
  single(out, "flashmem_kv_budget_bytes", "gauge", "resident KV budget (--kv-budget-mb; 0 = none)",
         facts.kv_budget_bytes);
  single(out, "flashmem_kv_reserved_bytes", "gauge", "KV cells reserved by active sequences (counted against the budget)",
         g.kv_reserved_bytes);
  single(out, "flashmem_kv_resident_bytes", "gauge", "KV cells holding pages now", g.kv_resident_bytes);
  single(out, "flashmem_kv_history_bytes", "gauge",
         "K and V of every position the active sequences hold (what full attention keeps resident)",
         g.kv_history_bytes);
  single(out, "flashmem_slow_tier_ram_bytes", "gauge",
         "KV pages the slow tier holds in RAM (ram store; a disk store's page cache is not counted)",
         g.slow_tier_ram_bytes);
  single(out, "flashmem_weights_bytes", "gauge", "model weights", facts.weights_bytes);
  single(out, "flashmem_process_resident_bytes", "gauge", "process RSS (VmRSS)", facts.process_rss_bytes);
  single(out, "flashmem_recall_bytes_total", "counter", "KV bytes recalled from the slow tier", g.recall_bytes_total);
  single(out, "flashmem_recall_misses_total", "counter", "KV pages a step needed that were not resident",
         g.recall_misses_total);
  ttft_.render(out, "flashmem_time_to_first_token_seconds", "from a request's arrival to its first token");
  inter_token_.render(out, "flashmem_inter_token_seconds", "between consecutive tokens of a request");
  handoff_.render(out, "flashmem_handoff_seconds",
                  "--role decode: from the prefill server's answer to the request's first token");
  return out;
}

}  // namespace flashmem::server
