// The largest dot product a query can have with any vector inside an axis-aligned box:
//   max_{lo <= k <= hi} q·k = Σ_d max(q_d·lo_d, q_d·hi_d)
// (each term is maximised independently at one of the box's faces). Quest's page upper bound:
// lo/hi are the elementwise min/max of a page's keys, so the result bounds q·k for every key of
// the page. Fast path (AVX2) and a scalar _ref twin with the same contract.
#pragma once
#include <cstdint>

namespace flashmem {

// q, lo, hi: [n] f32, lo <= hi elementwise.
float box_dot_max(const float* q, const float* lo, const float* hi, int64_t n);
float box_dot_max_ref(const float* q, const float* lo, const float* hi, int64_t n);

}  // namespace flashmem
