// The body the fuzz targets of checksummed files share: the reader runs on the input as it is
// (the whole-file checksum rejects almost every mutation: that path is fuzzed too), then again
// with the checksum under `checksum_key` rewritten to match, so that mutated fields reach the
// checks behind it. An Error is an accepted outcome; anything else (a crash, a sanitizer report,
// a trap in `load`) is a finding.
#pragma once
#include <cstddef>
#include <cstdint>
#include <utility>
#include <vector>

#include "gguf/gguf_checksum.h"
#include "util/error.h"

namespace flashmem::fuzz {

// `load(std::vector<uint8_t>)` reads (and may use) one file image.
template <class Load>
int run_checksummed_input(const uint8_t* data, size_t size, const char* checksum_key, const Load& load) {
  auto guarded = [&load](std::vector<uint8_t> bytes) {
    try {
      load(std::move(bytes));
    } catch (const Error&) {
    }
  };
  std::vector<uint8_t> bytes(data, data + size);
  guarded(bytes);
  if (gguf_fix_file_checksum(bytes, checksum_key)) guarded(std::move(bytes));
  return 0;
}

}  // namespace flashmem::fuzz
