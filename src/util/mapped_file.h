// A whole file in read-only memory: mapped from the page cache, or read into a copy on huge
// pages. Owns the memory; movable, not copyable.
#pragma once
#include <cstddef>
#include <cstdint>
#include <string>

#include "util/huge_pages.h"

namespace flashmem {

// How a file's bytes reach memory. kMap: mmap of the file (4 KiB page-cache pages, shared with
// every process mapping the file, read in lazily as they are touched). kHugePages: read once into
// a private HugePageBuffer (2 MiB pages where the kernel grants them; huge_pages.h says why).
enum class FileMemory { kMap, kHugePages };

class MappedFile {
 public:
  MappedFile() = default;
  // Maps `path` read-only. Throws Error if it cannot be opened or mapped or is not a regular file
  // (util/input_file.h: a FIFO or directory is refused, never waited on). An empty file maps to
  // data() == nullptr, size() == 0.
  // kHugePages reads the whole file at once; a read error throws Error naming the file.
  explicit MappedFile(const std::string& path, FileMemory memory = FileMemory::kMap);
  ~MappedFile();
  MappedFile(MappedFile&& other) noexcept;
  MappedFile& operator=(MappedFile&& other) noexcept;
  MappedFile(const MappedFile&) = delete;
  MappedFile& operator=(const MappedFile&) = delete;

  const uint8_t* data() const { return data_; }
  size_t size() const { return size_; }
  const std::string& path() const { return path_; }
  FileMemory memory() const { return copy_.data() != nullptr ? FileMemory::kHugePages : FileMemory::kMap; }

 private:
  void release();
  const uint8_t* data_ = nullptr;  // into the mapping of the file, or copy_
  size_t size_ = 0;
  std::string path_;
  HugePageBuffer copy_;  // kHugePages: [size_ rounded up to 2 MiB] the file's bytes
};

}  // namespace flashmem
