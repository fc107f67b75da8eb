#include "gguf/gguf_checksum.h"

#include <xxhash.h>

#include <cstring>

#include "util/error.h"

namespace flashmem {
namespace {

// XXH3-64 of data[0, size) with the 8 bytes at `hole` hashed as zeros.
uint64_t hash_with_hole(const uint8_t* data, size_t size, uint64_t hole) {
  XXH3_state_t* state = XXH3_createState();
  if (state == nullptr) throw std::bad_alloc();
  XXH3_64bits_reset(state);
  const uint8_t zeros[8] = {};
  XXH3_64bits_update(state, data, hole);
  XXH3_64bits_update(state, zeros, sizeof(zeros));
  XXH3_64bits_update(state, data + hole + 8, size - hole - 8);
  const uint64_t digest = XXH3_64bits_digest(state);
  XXH3_freeState(state);
  return digest;
}

const GgufValue& checksum_value(const GgufFile& file, std::string_view key) {
  const GgufValue* v = file.find(key);
  if (v == nullptr) fail("'{}': {} is missing", file.name(), key);
  if (v->type != GgufType::U64) fail("'{}': {} is not a u64", file.name(), key);
  // The reader validated the entry, so its 8 value bytes lie inside the file.
  if (v->value_offset + 8 > file.file_size()) fail("'{}': {} lies outside the file", file.name(), key);
  return *v;
}

}  // namespace

std::vector<uint8_t> gguf_to_bytes_checksummed(GgufWriter& writer, const std::string& key) {
  writer.set_u64(key, 0);
  std::vector<uint8_t> bytes = writer.to_bytes();
  if (!gguf_fix_file_checksum(bytes, key)) fail("internal: the file checksum key {} was not written", key);
  return bytes;
}

uint64_t gguf_file_checksum(const GgufFile& file, std::string_view key) {
  const GgufValue& v = checksum_value(file, key);
  return hash_with_hole(file.file_data(), file.file_size(), v.value_offset);
}

void gguf_verify_file_checksum(const GgufFile& file, std::string_view key) {
  const uint64_t actual = gguf_file_checksum(file, key);
  const uint64_t stored = file.find(key)->u;
  if (stored != actual)
    fail("'{}': checksum mismatch (file says {:016x}, its bytes hash to {:016x}): the file is corrupt",
         file.name(), stored, actual);
}

bool gguf_fix_file_checksum(std::vector<uint8_t>& bytes, std::string_view key) {
  uint64_t offset = 0;
  try {
    const GgufFile file = GgufFile::parse(bytes.data(), bytes.size());
    const GgufValue* v = file.find(key);
    if (v == nullptr || v->type != GgufType::U64 || v->value_offset + 8 > bytes.size()) return false;
    offset = v->value_offset;
  } catch (const Error&) {
    return false;
  }
  const uint64_t digest = hash_with_hole(bytes.data(), bytes.size(), offset);
  std::memcpy(bytes.data() + offset, &digest, sizeof(digest));  // GGUF is little-endian, as we are
  return true;
}

}  // namespace flashmem
