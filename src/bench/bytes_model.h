// The bytes-per-decode-token model of `flashmem bench` and the memory-bandwidth floor it gives:
// decode reads every weight once per token plus the attention's K and V, so at best it runs at
// bandwidth / bytes per token.
#pragma once
#include <cstdint>

#include "tensor/dtype.h"

namespace flashmem {
struct ModelConfig;
}

namespace flashmem::bench {

struct DecodeBytes {
  double weights = 0;  // weight bytes read per decode token (Model::decode_weight_bytes)
  double kv = 0;       // K + V bytes the attention reads per decode token
  double total() const { return weights + kv; }
};

// K + V bytes one decode step of full attention reads, averaged over `gen` steps after a
// `context`-token history: every layer reads a K and a V row of every position so far, and the
// steps see context + 1 ... context + gen positions (mean context + (gen + 1) / 2).
double full_attention_kv_bytes(const ModelConfig& c, DType kv_type, int64_t context, int64_t gen);

// Tokens per second if decode were limited only by reading `bytes_per_token` at `bandwidth_gbs`
// (1e9 bytes/s); 0 when bytes_per_token is not positive.
double bandwidth_floor_tok_s(double bandwidth_gbs, double bytes_per_token);

}  // namespace flashmem::bench
