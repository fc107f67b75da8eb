#include "eval/cell.h"

#include <algorithm>
#include <cmath>

#include "eval/wilson.h"

namespace flashmem::eval {

int64_t PageSetup::tail_pages() const {
  return std::max(recent_pages, (tau + page_tokens - 1) / page_tokens + 1);
}

SampleResult scored_sample(const std::vector<std::string>& answers, const std::string& output) {
  SampleResult r;
  r.score = data::score_output(answers, output);
  r.answers = static_cast<int64_t>(answers.size());
  r.answers_found = std::round(r.score * static_cast<double>(r.answers));
  return r;
}

CellResult summarize_cell(const CellPlan& plan, const std::vector<SampleResult>& samples) {
  CellResult c;
  c.plan = plan;
  c.n = static_cast<int64_t>(samples.size());
  if (samples.empty()) return c;
  // Samples that stopped before any decode step measured no resident fraction (the runtime then
  // reports 1.0): average over the samples that did, if any.
  double measured = 0, fraction_sum = 0, fraction_all = 0;
  for (const SampleResult& r : samples) {
    fraction_all += r.resident_fraction_avg;
    if (r.resident_fraction_steps.empty()) continue;
    measured += 1;
    fraction_sum += r.resident_fraction_avg;
  }
  double solved = 0;
  for (const SampleResult& r : samples) {
    c.accuracy += r.score;
    c.answers_found += r.answers_found;
    c.answers_total += static_cast<double>(r.answers);
    solved += r.score == 1.0 ? 1 : 0;
    c.resident_fraction_peak = std::max(c.resident_fraction_peak, r.resident_fraction_peak);
    c.resident_kv_bytes_avg += static_cast<double>(r.resident_kv_bytes_avg);
    c.resident_kv_bytes_peak = std::max(c.resident_kv_bytes_peak, r.resident_kv_bytes_peak);
    c.full_kv_bytes_avg += static_cast<double>(r.full_kv_bytes);
    c.attn_bytes_per_step += static_cast<double>(r.attn_bytes_per_step);
    c.decode_tokens += r.decode_tokens;
    c.decode_seconds += r.decode_seconds;
    c.seconds += r.seconds;
  }
  const auto n = static_cast<double>(samples.size());
  c.accuracy /= n;
  c.solved = solved / n;
  const Interval per_answer = wilson_interval(c.answers_found, c.answers_total);
  c.ci_low = per_answer.low;
  c.ci_high = per_answer.high;
  const Interval per_sample = wilson_interval(solved, n);
  c.solved_ci_low = per_sample.low;
  c.solved_ci_high = per_sample.high;
  c.resident_fraction_avg = measured > 0 ? fraction_sum / measured : fraction_all / n;
  c.resident_kv_bytes_avg /= n;
  c.full_kv_bytes_avg /= n;
  c.attn_bytes_per_step /= n;
  c.decode_tok_s = c.decode_seconds > 0 ? static_cast<double>(c.decode_tokens) / c.decode_seconds : 0;
  c.resident_fraction_steps = samples.front().resident_fraction_steps;
  return c;
}

}  // namespace flashmem::eval
