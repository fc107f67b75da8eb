// The server's counters, gauges and latency histograms, and their Prometheus text exposition
// (GET /metrics, format 0.0.4). HTTP threads count requests; the scheduler thread counts tokens,
// observes latencies and publishes its gauges after every step. All members are thread-safe.
//
// Memory figures are process RSS terms: model weights (mapped file pages the decode reads),
// resident KV cells, and the slow tier's RAM (a ram store's mirror; a disk store holds none: its
// pages live in the file, and the kernel's page cache of it is not counted).
#pragma once
#include <cstdint>
#include <map>
#include <mutex>
#include <string>
#include <utility>
#include <vector>

namespace flashmem::server {

// A Prometheus histogram over fixed upper bounds (seconds).
class Histogram {
 public:
  explicit Histogram(std::vector<double> bounds);
  void observe(double value);
  // Appends the _bucket (cumulative, le="+Inf" last), _sum and _count lines.
  void render(std::string& out, const std::string& name, const std::string& help) const;

 private:
  std::vector<double> bounds_;    // [buckets] ascending upper bounds
  std::vector<uint64_t> counts_;  // [buckets + 1] observations per bucket, the last above all
  double sum_ = 0;
  uint64_t count_ = 0;
};

// What the scheduler publishes after every step.
struct SchedulerGauges {
  int64_t queue_length = 0;
  int64_t active_sequences = 0;
  uint64_t kv_reserved_bytes = 0;      // cells the active sequences reserve (the budget's unit)
  uint64_t kv_resident_bytes = 0;      // of which hold pages now
  uint64_t kv_history_bytes = 0;       // K+V of every position they hold (full attention's need)
  uint64_t slow_tier_ram_bytes = 0;    // pages a ram store mirrors in RAM
  uint64_t recall_bytes_total = 0;     // since start, finished sequences included
  uint64_t recall_misses_total = 0;
};

// Facts of the process at the time of a scrape.
struct MemoryFacts {
  uint64_t weights_bytes = 0;    // the model's weights
  uint64_t kv_budget_bytes = 0;  // --kv-budget-mb (0: none)
  double process_rss_bytes = 0;  // VmRSS
};

class Metrics {
 public:
  Metrics();
  void count_request(const std::string& route, int status);
  void count_rejected();  // a request refused with 429 (queue full)
  void count_timed_out();  // a request failed by --request-timeout (streamed or not)
  void add_tokens(int64_t prompt_tokens, int64_t completion_tokens);
  void observe_time_to_first_token(double seconds);
  void observe_inter_token(double seconds);
  void observe_handoff(double seconds);  // --role decode (server/role.h)
  void set_gauges(const SchedulerGauges& gauges);
  SchedulerGauges gauges() const;

  std::string render(const MemoryFacts& facts) const;

 private:
  mutable std::mutex mutex_;  // guards everything below
  std::map<std::pair<std::string, int>, uint64_t> requests_;  // (route, status) -> count
  uint64_t rejected_ = 0;
  uint64_t timed_out_ = 0;
  uint64_t prompt_tokens_ = 0, completion_tokens_ = 0;
  Histogram ttft_, inter_token_, handoff_;
  SchedulerGauges gauges_;
};

}  // namespace flashmem::server
