// libFuzzer target: the Memory Indexer file reader (IndexerModel::from_bytes). Each input runs
// twice: as it is (the whole-file checksum rejects almost every mutation: that path is fuzzed
// too) and with its flashmem-indexer.file_checksum rewritten to match, so that mutated metadata
// and tensor tables reach the config validation, the RoPE/YaRN tables, the shape checks and the
// weight binding behind the checksum. On success the model is used: one query score per layer.
#include <cstdint>
#include <vector>

#include "checksummed_input.h"
#include "indexer/indexer_model.h"

namespace {

void load(std::vector<uint8_t> bytes) {
  const flashmem::IndexerModel m = flashmem::IndexerModel::from_bytes(std::move(bytes), "fuzz");
  // Touch what the loader bound: every layer's q_norm and the first and last byte of each weight.
  volatile float sink = 0;
  for (const flashmem::IndexerLayer& l : m.layers()) {
    for (float g : l.q_norm) sink = sink + g;
    for (const flashmem::WeightView* w : {&l.wq_a, &l.wq_b, &l.weights_proj}) {
      const size_t n = flashmem::row_bytes(w->type, w->cols) * static_cast<size_t>(w->rows);
      if (n > 0) sink = sink + w->data[0] + w->data[n - 1];
    }
  }
  (void)m.rope();
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  return flashmem::fuzz::run_checksummed_input(data, size, "flashmem-indexer.file_checksum", load);
}
