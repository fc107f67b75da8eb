// Read-only memory map of a whole file. Owns the mapping; movable, not copyable.
#pragma once
#include <cstddef>
#include <cstdint>
#include <string>

namespace flashmem {

class MappedFile {
 public:
  MappedFile() = default;
  // Maps `path` read-only. Throws Error if it cannot be opened or mapped or is not a regular file
  // (util/input_file.h: a FIFO or directory is refused, never waited on). An empty file maps to
  // data() == nullptr, size() == 0.
  explicit MappedFile(const std::string& path);
  ~MappedFile();
  MappedFile(MappedFile&& other) noexcept;
  MappedFile& operator=(MappedFile&& other) noexcept;
  MappedFile(const MappedFile&) = delete;
  MappedFile& operator=(const MappedFile&) = delete;

  const uint8_t* data() const { return data_; }
  size_t size() const { return size_; }
  const std::string& path() const { return path_; }

 private:
  void release();
  const uint8_t* data_ = nullptr;
  size_t size_ = 0;
  std::string path_;
};

}  // namespace flashmem
