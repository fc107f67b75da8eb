// libFuzzer target: the train-lm checkpoint reader (lm::checkpoint_from_bytes). Each input runs
// as it is and with its lm.file_checksum rewritten to match, so mutated fields reach the config
// validation, the layout arithmetic and the tensor checks behind the whole-file checksum.
#include <cstdint>
#include <vector>

#include "gguf/gguf_checksum.h"
#include "lm/checkpoint.h"
#include "util/error.h"

namespace {

void load(const std::vector<uint8_t>& bytes) {
  try {
    const flashmem::lm::Checkpoint ck = flashmem::lm::checkpoint_from_bytes(bytes.data(), bytes.size(), "fuzz");
    const flashmem::lm::ParamLayout layout = flashmem::lm::make_layout(ck.config);
    if (ck.params.size() != layout.total || ck.adam_m.size() != layout.total || ck.adam_v.size() != layout.total)
      __builtin_trap();  // the reader promises tensors of the layout's size
  } catch (const flashmem::Error&) {
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::vector<uint8_t> bytes(data, data + size);
  load(bytes);
  if (flashmem::gguf_fix_file_checksum(bytes, "lm.file_checksum")) load(bytes);
  return 0;
}
