// Wall-clock timing and the progress line long jobs print (rate and ETA).
#pragma once
#include <chrono>
#include <cstdint>
#include <string>

namespace flashmem {

inline double now_seconds() {
  using namespace std::chrono;
  return duration<double>(steady_clock::now().time_since_epoch()).count();
}

// Prints "<label> done/total unit | rate unit/s | ETA mm:ss" to stderr. On a terminal (or with
// `force`) one line is redrawn in place at most every 0.25 s; otherwise (a log file, a pipe) a
// plain line is appended every kLogSeconds, so a job that runs for hours under nohup or a script
// still shows its rate and ETA, and a short one writes nothing. finish() prints the final line
// (on a terminal, or after a job that logged at least one line).
class ProgressLine {
 public:
  ProgressLine(std::string label, int64_t total, std::string unit, bool force = false);
  void update(int64_t done, const std::string& extra = "");
  void finish(const std::string& extra = "");

 private:
  // Between two appended lines when stderr is not a terminal: 30 s keeps a two-hour job's log
  // to 240 lines and a check on it never more than half a minute stale.
  static constexpr double kLogSeconds = 30.0;
  void print(int64_t done, const std::string& extra, bool final_line);
  std::string label_, unit_;
  int64_t total_;
  bool in_place_;     // redraw one line (\r) rather than append lines
  bool logged_ = false;  // an appended line was written
  double start_, last_print_ = 0;
  int64_t last_done_ = 0;
};

}  // namespace flashmem
