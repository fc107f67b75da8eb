#include "util/byte_codec.h"

#include "util/error.h"

namespace flashmem {

const char* ByteReader::take(size_t n, const char* field) {
  if (n > remaining()) fail("{} is truncated: {} needs {} bytes, {} left", what_, field, n, remaining());
  const char* p = bytes_.data() + offset_;
  offset_ += n;
  return p;
}

void ByteReader::check_count(uint64_t n, uint64_t max_elements, size_t element_bytes,
                             const char* field) const {
  if (n > max_elements || n * element_bytes > remaining())
    fail("{} is damaged: {} claims {} elements ({} bytes left)", what_, field, n, remaining());
}

void ByteReader::expect_end() const {
  if (remaining() != 0) fail("{} is damaged: {} bytes after its last field", what_, remaining());
}

}  // namespace flashmem
