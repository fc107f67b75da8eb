// libFuzzer target: the dump reader (dump_from_bytes: metadata, shapes, CSR labels, checksums,
// finite values). Each input runs as it is and with its flashmem-dump.file_checksum rewritten to
// match (so mutations reach the checks behind the whole-file checksum). On success the labels
// are walked row by row as the trainer's sampler does.
#include <cstdint>
#include <vector>

#include "checksummed_input.h"
#include "train/dump_format.h"

namespace {

void load(const std::vector<uint8_t>& bytes) {
  const flashmem::DumpDocument d = flashmem::dump_from_bytes(bytes.data(), bytes.size(), "fuzz");
  volatile int64_t sink = 0;
  for (int64_t t = 0; t < d.n_rows(); ++t) {
    for (int32_t i = d.label_pointers[static_cast<size_t>(t)]; i < d.label_pointers[static_cast<size_t>(t) + 1]; ++i)
      sink = sink + d.label_indices[static_cast<size_t>(i)] + d.label_scores[static_cast<size_t>(i)];
    for (size_t l = 0; l < d.meta.layers.size(); ++l) sink = sink + d.hidden_row(l, t)[d.meta.hidden_dim - 1];
  }
  for (size_t l = 0; l < d.meta.layers.size(); ++l)
    for (int64_t c = 0; c < d.meta.n_chunks(); ++c) sink = sink + d.key_input_row(l, c)[0];
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  return flashmem::fuzz::run_checksummed_input(data, size, "flashmem-dump.file_checksum", load);
}
