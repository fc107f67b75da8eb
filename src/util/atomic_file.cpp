#include "util/atomic_file.h"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <filesystem>

#include "util/error.h"
#include "util/owned_file.h"

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

void fsync_directory(const std::filesystem::path& dir) {
  int fd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0) return;  // best effort: the rename itself is already atomic
  ::fsync(fd);
  ::close(fd);
}

}  // namespace

void write_file_atomic(const std::string& path, const std::function<void(FileSink&)>& produce) {
  const std::filesystem::path target(path);
  const std::filesystem::path dir = target.has_parent_path() ? target.parent_path() : ".";
  // PATH.tmp.PID.RANDOM, removed on error or SIGINT/SIGTERM; one left by a kill -9 is removed by
  // the next write of PATH. 0644 before the umask: it becomes the output file.
  OwnedFile tmp =
      OwnedFile::create_in(dir.string(), {target.filename().string() + ".tmp.", "", ""}, 0644);
  FdSink sink(tmp.fd(), tmp.path());
  produce(sink);
  if (::fsync(tmp.fd()) != 0) fail("fsync of '{}' failed: {}", tmp.path(), std::strerror(errno));
  if (const int error = tmp.close(); error != 0)
    fail("close of '{}' failed: {}", tmp.path(), std::strerror(error));
  if (::rename(tmp.path().c_str(), path.c_str()) != 0)
    fail("cannot rename '{}' to '{}': {}", tmp.path(), path, std::strerror(errno));
  tmp.keep();  // it is `path` now
  fsync_directory(dir);
}

void write_file_atomic(const std::string& path, std::string_view bytes) {
  write_file_atomic(path, [&](FileSink& sink) { sink.write(bytes.data(), bytes.size()); });
}

}  // namespace flashmem
