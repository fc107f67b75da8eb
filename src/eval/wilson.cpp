#include "eval/wilson.h"

#include <algorithm>
#include <cmath>

namespace flashmem::eval {

Interval wilson_interval(double successes, double trials, double z) {
  if (!(trials > 0)) return {0, 1};
  const double p = std::clamp(successes, 0.0, trials) / trials;
  const double z2 = z * z;
  // center = (p + z²/2n) / (1 + z²/n), half = z·sqrt(p(1-p)/n + z²/4n²) / (1 + z²/n)
  const double denom = 1 + z2 / trials;
  const double center = (p + z2 / (2 * trials)) / denom;
  const double half = z * std::sqrt(p * (1 - p) / trials + z2 / (4 * trials * trials)) / denom;
  return {std::max(0.0, center - half), std::min(1.0, center + half)};
}

}  // namespace flashmem::eval
