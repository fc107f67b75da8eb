#include "util/timer.h"

#include <fmt/format.h>
#include <unistd.h>

#include <cstdio>

namespace flashmem {

ProgressLine::ProgressLine(std::string label, int64_t total, std::string unit, bool force)
    : label_(std::move(label)),
      unit_(std::move(unit)),
      total_(total),
      enabled_(force || ::isatty(STDERR_FILENO) != 0),
      start_(now_seconds()) {}

void ProgressLine::update(int64_t done, const std::string& extra) {
  last_done_ = done;
  if (!enabled_) return;
  double t = now_seconds();
  if (t - last_print_ < 0.25) return;
  last_print_ = t;
  print(done, extra, false);
}

void ProgressLine::finish(const std::string& extra) {
  if (!enabled_) return;
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
  std::string line = fmt::format("\r{} {}/{} {} | {:.1f} {}/s | {} {}", label_, done, total_, unit_,
                                 rate, unit_, final_line ? "elapsed" : "ETA",
                                 final_line ? fmt::format("{:.1f}s", elapsed) : eta);
  if (!extra.empty()) line += " | " + extra;
  std::fprintf(stderr, "%s\033[K%s", line.c_str(), final_line ? "\n" : "");
  std::fflush(stderr);
}

}  // namespace flashmem
