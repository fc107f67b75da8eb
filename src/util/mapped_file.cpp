#include "util/mapped_file.h"

#include <sys/mman.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <utility>

#include "util/error.h"
#include "util/input_file.h"

namespace flashmem {

MappedFile::MappedFile(const std::string& path, FileMemory memory) : path_(path) {
  const InputFile file(path);  // regular files only; closed once mapped (the map stays valid)
  size_ = file.size();
  if (size_ > 0 && memory == FileMemory::kHugePages) {
    copy_ = HugePageBuffer(size_);
    for (size_t done = 0; done < size_;) {
      // pread moves at most ~2 GiB per call on Linux; a short read continues where it stopped.
      const ssize_t n = ::pread(file.fd(), copy_.data() + done, size_ - done, static_cast<off_t>(done));
      if (n < 0 && errno == EINTR) continue;
      if (n < 0) fail("cannot read '{}': {}", path, std::strerror(errno));
      if (n == 0) fail("cannot read '{}': it ended at byte {} of {} (changed while being read?)", path, done, size_);
      done += static_cast<size_t>(n);
    }
    copy_.make_read_only();
    data_ = copy_.data();
  } else if (size_ > 0) {
    void* p = ::mmap(nullptr, size_, PROT_READ, MAP_PRIVATE, file.fd(), 0);
    if (p == MAP_FAILED) fail("cannot map '{}': {}", path, std::strerror(errno));
    data_ = static_cast<const uint8_t*>(p);
  }
}

MappedFile::~MappedFile() { release(); }

MappedFile::MappedFile(MappedFile&& other) noexcept
    : data_(std::exchange(other.data_, nullptr)),
      size_(std::exchange(other.size_, 0)),
      path_(std::move(other.path_)),
      copy_(std::move(other.copy_)) {}

MappedFile& MappedFile::operator=(MappedFile&& other) noexcept {
  if (this != &other) {
    release();
    data_ = std::exchange(other.data_, nullptr);
    size_ = std::exchange(other.size_, 0);
    path_ = std::move(other.path_);
    copy_ = std::move(other.copy_);
  }
  return *this;
}

void MappedFile::release() {
  if (data_ != nullptr && copy_.data() == nullptr) ::munmap(const_cast<uint8_t*>(data_), size_);
  copy_ = HugePageBuffer();
  data_ = nullptr;
  size_ = 0;
}

}  // namespace flashmem
