#include "util/atomic_file.h"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <random>

#include "util/error.h"

namespace flashmem {
namespace {

class FdSink final : public FileSink {
 public:
  FdSink(int fd, const std::string& path) : fd_(fd), path_(path) {}
  void write(const void* data, size_t size) override {
    const auto* p = static_cast<const uint8_t*>(data);
    while (size > 0) {
      ssize_t n = ::write(fd_, p, size);
      if (n < 0) {
        if (errno == EINTR) continue;
        fail("write to '{}' failed: {}", path_, std::strerror(errno));
      }
      p += n;
      size -= static_cast<size_t>(n);
      written_ += static_cast<uint64_t>(n);
    }
  }
  uint64_t bytes_written() const override { return written_; }

 private:
  int fd_;
  const std::string& path_;
  uint64_t written_ = 0;
};

void fsync_directory_of(const std::string& path) {
  std::filesystem::path dir = std::filesystem::path(path).parent_path();
  if (dir.empty()) dir = ".";
  int fd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0) return;  // best effort: the rename itself is already atomic
  ::fsync(fd);
  ::close(fd);
}

}  // namespace

void write_file_atomic(const std::string& path, const std::function<void(FileSink&)>& produce) {
  std::random_device rd;
  const std::string tmp = fmt::format("{}.tmp.{}.{:08x}", path, ::getpid(), rd());
  int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
  if (fd < 0) fail("cannot create '{}': {}", tmp, std::strerror(errno));
  try {
    FdSink sink(fd, tmp);
    produce(sink);
    if (::fsync(fd) != 0) fail("fsync of '{}' failed: {}", tmp, std::strerror(errno));
    if (::close(fd) != 0) {
      fd = -1;
      fail("close of '{}' failed: {}", tmp, std::strerror(errno));
    }
    fd = -1;
    if (::rename(tmp.c_str(), path.c_str()) != 0)
      fail("cannot rename '{}' to '{}': {}", tmp, path, std::strerror(errno));
  } catch (...) {
    if (fd >= 0) ::close(fd);
    ::unlink(tmp.c_str());
    throw;
  }
  fsync_directory_of(path);
}

void write_file_atomic(const std::string& path, std::string_view bytes) {
  write_file_atomic(path, [&](FileSink& sink) { sink.write(bytes.data(), bytes.size()); });
}

}  // namespace flashmem
