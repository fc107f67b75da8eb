#include "util/timer.h"

#include <fmt/format.h>
#include <unistd.h>

#include <cstdio>

namespace flashmem {

ProgressLine::ProgressLine(std::string label, int64_t total, std::string unit, bool force)
    : label_(std::move(label)),
      unit_(std::move(unit)),
      total_(total),
      in_place_(force || ::isatty(STDERR_FILENO) != 0),
      start_(now_seconds()) {
  // A terminal shows the first line at once; a log's first line comes one interval after the start.
  last_print_ = in_place_ ? 0.0 : start_;
}

void ProgressLine::update(int64_t done, const std::string& extra) {
  last_done_ = done;
  const double t = now_seconds();
  if (t - last_print_ < (in_place_ ? 0.25 : kLogSeconds)) return;
  last_print_ = t;
  logged_ = !in_place_;
  print(done, extra, false);
}

void ProgressLine::finish(const std::string& extra) {
  if (!in_place_ && !logged_) return;
  print(last_done_, extra, true);
}

void ProgressLine::print(int64_t done, const std::string& extra, bool final_line) {
  double elapsed = now_seconds() - start_;
  double rate = elapsed > 0 ? static_cast<double>(done) / elapsed : 0.0;
  std::string eta = "--:--";
  if (rate > 0 && total_ > done) {
    auto s = static_cast<int64_t>(static_cast<double>(total_ - done) / rate);
    eta = fmt::format("{:02}:{:02}", s / 60, s % 60);
  }
  std::string line = fmt::format("{} {}/{} {} | {:.1f} {}/s | {} {}", label_, done, total_, unit_,
                                 rate, unit_, final_line ? "elapsed" : "ETA",
                                 final_line ? fmt::format("{:.1f}s", elapsed) : eta);
  if (!extra.empty()) line += " | " + extra;
  if (in_place_)
    std::fprintf(stderr, "\r%s\033[K%s", line.c_str(), final_line ? "\n" : "");
  else
    std::fprintf(stderr, "%s\n", line.c_str());
  std::fflush(stderr);
}

}  // namespace flashmem
