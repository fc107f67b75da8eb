// Valid dump documents made without a backbone (tests of the trainer, the dump reader and the
// fuzz seeds): random f16 hidden states and key inputs, labels that name the sink chunk, a chunk
// a fixed distance back and the token's own chunk. Deterministic for a seed.
#pragma once
#include <cstdint>
#include <random>
#include <string>

#include "tensor/convert.h"
#include "train/dump_format.h"

namespace flashmem::test {

struct SyntheticDumpSpec {
  int64_t n_tokens = 40;
  int64_t label_from = 20;  // first labeled position
  int64_t hidden_dim = 8;
  std::vector<int32_t> layers = {1, 3};
  int64_t chunk_tokens = 4;
  int64_t label_layers = 4;
  int64_t min_layers = 2;
};

inline DumpDocument synthetic_dump(const SyntheticDumpSpec& s, uint64_t seed, const std::string& id = "synthetic#0") {
  DumpDocument d;
  DumpMeta& m = d.meta;
  m.backbone = "synthetic.gguf";
  m.backbone_sha256 = std::string(64, 'a');
  m.document_id = id;
  m.n_tokens = s.n_tokens;
  m.layers = s.layers;
  m.hidden_dim = s.hidden_dim;
  m.chunk_tokens = s.chunk_tokens;
  m.top_p = 0.6;
  m.min_layers = s.min_layers;
  m.label_layers = s.label_layers;
  m.inputs = "{\"synthetic\":" + std::to_string(seed) + "}";
  std::mt19937_64 rng(seed);
  std::normal_distribution<float> normal;
  const int64_t T = s.n_tokens - s.label_from, C = s.n_tokens / s.chunk_tokens;
  for (int64_t p = s.label_from; p < s.n_tokens; ++p) d.positions.push_back(static_cast<int32_t>(p));
  for (size_t l = 0; l < s.layers.size(); ++l) {
    std::vector<uint16_t> h(static_cast<size_t>(T * s.hidden_dim)), k(static_cast<size_t>(C * s.hidden_dim));
    for (auto& x : h) x = f32_to_fp16(normal(rng));
    for (auto& x : k) x = f32_to_fp16(normal(rng));
    d.hidden.push_back(std::move(h));
    d.key_inputs.push_back(std::move(k));
  }
  d.label_pointers = {0};
  for (int64_t t = 0; t < T; ++t) {
    const auto own = static_cast<int32_t>((s.label_from + t) / s.chunk_tokens);
    const int32_t back = own - 5;
    for (int32_t c : {0, back, own}) {
      if (c < 0 || (c == 0 && back == 0) || (!d.label_indices.empty() && d.label_pointers.back() < static_cast<int32_t>(d.label_indices.size()) && c <= d.label_indices.back()))
        continue;
      d.label_indices.push_back(c);
      d.label_scores.push_back(static_cast<int32_t>(s.min_layers + (c % 2)));
    }
    d.label_pointers.push_back(static_cast<int32_t>(d.label_indices.size()));
  }
  return d;
}

}  // namespace flashmem::test
