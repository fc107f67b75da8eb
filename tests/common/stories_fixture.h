// What the runtime tests on stories260K share: the model, its reference token stream, the session
// options they run it with, and a random Memory Indexer on two of its layers.
#pragma once
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "indexer/indexer_model.h"
#include "model/model.h"
#include "engine/session.h"
#include "util/raw_array.h"

namespace flashmem::test {

inline std::shared_ptr<Model> load_stories260k() {
  return Model::load(std::string(FLASHMEM_TEST_DATA) + "/models/stories260K.gguf");
}

// tests/data/logits/s260k_seq_a.i32: the token stream the golden logits were recorded on.
inline std::vector<int32_t> stories_tokens() {
  return read_i32_file(std::string(FLASHMEM_TEST_DATA) + "/logits/s260k_seq_a.i32");
}

// 512 positions hold the 300-token prompts plus their decode steps; batches of 100 make a prompt
// take several prefill chunks; 2 threads as the machine has.
inline SessionOptions stories_session_options() {
  return {.n_ctx = 512, .kv_type = DType::F16, .n_threads = 2, .max_batch = 100};
}

// A random indexer for layers 1 and 3 of `model` (rank 32, 4 heads, 4-token chunks): its scores
// mean nothing; the lsa paths run.
inline std::shared_ptr<const IndexerModel> random_stories_indexer(const Model& model, uint64_t seed) {
  RandomIndexerSpec spec;
  spec.layers = {1, 3};
  spec.hidden_dim = model.config().dim;
  spec.q_lora_rank = 32;
  spec.n_heads = 4;
  return std::make_shared<const IndexerModel>(create_random_indexer(spec, seed));
}

}  // namespace flashmem::test
