// Whole-file checksums for the GGUF files flashmem writes (indexers, dumps, train-lm
// checkpoints): XXH3-64 (seed 0) over every byte of the file — header, metadata, tensor table,
// padding and tensor data — with the 8 value bytes of the checksum key itself read as zero.
// A flipped bit anywhere (a RoPE constant, a layer id, a tensor offset, a weight) is a mismatch.
//
// The key is an ordinary u64 metadata entry, so any GGUF reader still opens the file.
#pragma once
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "gguf/gguf.h"

namespace flashmem {

// Sets `key` in `writer` and serialises: the returned bytes carry their own whole-file checksum.
std::vector<uint8_t> gguf_to_bytes_checksummed(GgufWriter& writer, const std::string& key);

// The whole-file checksum of `file` for `key` (which must be a u64 entry of the file).
uint64_t gguf_file_checksum(const GgufFile& file, std::string_view key);

// Throws Error naming the file when `key` is missing, not a u64, or does not match the bytes.
void gguf_verify_file_checksum(const GgufFile& file, std::string_view key);

// Tests and fuzzing: rewrites the checksum value of `key` inside `bytes` (a GGUF file with a u64
// entry `key`) so that it matches; returns false when the bytes do not parse or lack the key.
bool gguf_fix_file_checksum(std::vector<uint8_t>& bytes, std::string_view key);

}  // namespace flashmem
