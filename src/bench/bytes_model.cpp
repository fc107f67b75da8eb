#include "bench/bytes_model.h"

#include "model/config.h"

namespace flashmem::bench {

double full_attention_kv_bytes(const ModelConfig& c, DType kv_type, int64_t context, int64_t gen) {
  const double kv_row = static_cast<double>(row_bytes(kv_type, c.kv_dim()));
  const double avg_keys = static_cast<double>(context) + static_cast<double>(gen + 1) / 2.0;
  return static_cast<double>(c.kv_rows() * c.n_layers) * avg_keys * kv_row;  // K and V rows
}

double bandwidth_floor_tok_s(double bandwidth_gbs, double bytes_per_token) {
  return bytes_per_token > 0 ? bandwidth_gbs * 1e9 / bytes_per_token : 0.0;
}

}  // namespace flashmem::bench
