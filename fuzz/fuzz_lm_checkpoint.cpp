// libFuzzer target: the train-lm checkpoint reader (lm::checkpoint_from_bytes). Each input runs
// as it is and with its lm.file_checksum rewritten to match, so mutated fields reach the config
// validation, the layout arithmetic and the tensor checks behind the whole-file checksum.
#include <cstdint>
#include <vector>

#include "checksummed_input.h"
#include "lm/checkpoint.h"

namespace {

void load(const std::vector<uint8_t>& bytes) {
  const flashmem::lm::Checkpoint ck = flashmem::lm::checkpoint_from_bytes(bytes.data(), bytes.size(), "fuzz");
  const flashmem::lm::ParamLayout layout = flashmem::lm::make_layout(ck.config);
  if (ck.params.size() != layout.total || ck.adam_m.size() != layout.total || ck.adam_v.size() != layout.total)
    __builtin_trap();  // the reader promises tensors of the layout's size
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  return flashmem::fuzz::run_checksummed_input(data, size, "lm.file_checksum", load);
}
