// What oracle:F reads: the true attention mass per page for every selection cycle of one
// sequence, recorded by a full-attention pass (policy `full` with PagedKvOptions::oracle_trace;
// runtime/oracle.h runs both passes).
#pragma once
#include <cstdint>
#include <vector>

namespace flashmem {

struct OracleTrace {
  int64_t page_tokens = 0;
  int64_t tau = 0;
  // [n_cycles][n_pages]: cycle c covers decode steps [c·tau, (c+1)·tau) after the prompt (the
  // steps that use the selection made at its start). Per page: its keys' attention
  // probability, averaged over query heads, summed over layers and the cycle's steps.
  std::vector<std::vector<float>> cycle_page_mass;
};

}  // namespace flashmem
