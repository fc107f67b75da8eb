#include "model/model_identity.h"

#include <xxhash.h>

#include <algorithm>
#include <new>

namespace flashmem {

uint64_t model_identity(const Model& model) {
  const GgufFile& file = model.file();
  const uint8_t* data = file.file_data();
  const uint64_t size = file.file_size();
  const uint64_t head = std::min<uint64_t>(file.data_offset(), size);
  // 1 MiB at each end of the tensor data: the token embedding comes first in most files and the
  // output head or the last layer last.
  constexpr uint64_t kSample = uint64_t{1} << 20;
  const uint64_t first_end = std::min(size, head + kSample);
  const uint64_t last_begin = std::max(first_end, size > kSample ? size - kSample : 0);
  XXH3_state_t* state = XXH3_createState();
  if (state == nullptr) throw std::bad_alloc();
  XXH3_64bits_reset(state);
  XXH3_64bits_update(state, data, first_end);
  XXH3_64bits_update(state, data + last_begin, size - last_begin);
  const uint64_t id = XXH3_64bits_digest(state);
  XXH3_freeState(state);
  return id;
}

}  // namespace flashmem
