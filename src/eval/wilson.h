// Wilson score interval for a binomial proportion: the confidence interval the evaluation
// reports around an accuracy. Unlike the normal ("Wald") interval it stays inside [0, 1] and is
// not degenerate at 0 or n successes, which small-sample accuracy cells hit all the time.
#pragma once
#include <cstdint>

namespace flashmem::eval {

struct Interval {
  double low = 0, high = 1;
};

// Interval for `successes` out of `trials` at the normal quantile z (1.96: 95%). trials == 0
// gives [0, 1] (nothing measured); successes is clamped to [0, trials].
Interval wilson_interval(double successes, double trials, double z = 1.96);

}  // namespace flashmem::eval
