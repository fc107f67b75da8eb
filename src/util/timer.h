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

// Prints "\r<label> done/total  rate unit/s  ETA mm:ss" to stderr at most every 0.25 s, only when
// stderr is a terminal or `force` is set; finish() prints the final line and a newline.
class ProgressLine {
 public:
  ProgressLine(std::string label, int64_t total, std::string unit, bool force = false);
  void update(int64_t done, const std::string& extra = "");
  void finish(const std::string& extra = "");

 private:
  void print(int64_t done, const std::string& extra, bool final_line);
  std::string label_, unit_;
  int64_t total_;
  bool enabled_;
  double start_, last_print_ = 0;
  int64_t last_done_ = 0;
};

}  // namespace flashmem
