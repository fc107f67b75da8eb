#include "util/dir_lock.h"

#include <fcntl.h>
#include <sys/file.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <filesystem>

#include "util/error.h"

namespace flashmem {

DirLock DirLock::lock_directory(const std::string& dir) {
  return acquire((std::filesystem::path(dir) / ".flashmem.lock").string(), dir);
}

DirLock DirLock::lock_file(const std::string& path) {
  const std::filesystem::path p(path);
  return acquire((p.parent_path() / ("." + p.filename().string() + ".lock")).string(), path);
}

DirLock DirLock::acquire(const std::string& lock_path, const std::string& what) {
  const int fd = ::open(lock_path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0644);
  if (fd < 0) fail("cannot open lock file '{}': {}", lock_path, std::strerror(errno));
  int rc;
  do {
    rc = ::flock(fd, LOCK_EX | LOCK_NB);
  } while (rc != 0 && errno == EINTR);
  if (rc != 0) {
    const int err = errno;
    if (err == EWOULDBLOCK) {
      char buf[32] = {};
      const ssize_t n = ::pread(fd, buf, sizeof(buf) - 1, 0);
      ::close(fd);
      const long pid = n > 0 ? std::strtol(buf, nullptr, 10) : 0;
      if (pid > 0) fail("another flashmem process (pid {}) is writing {}", pid, what);
      fail("another flashmem process is writing {}", what);
    }
    ::close(fd);
    fail("cannot lock '{}': {}", lock_path, std::strerror(err));
  }
  // Ours now: record the pid for the message a second process prints.
  const std::string pid = std::to_string(::getpid()) + "\n";
  if (::ftruncate(fd, 0) != 0 || ::pwrite(fd, pid.data(), pid.size(), 0) != static_cast<ssize_t>(pid.size())) {
    // The pid is only for the message: the lock holds without it.
  }
  return DirLock(fd, lock_path);
}

DirLock::DirLock(DirLock&& other) noexcept : fd_(other.fd_), lock_path_(std::move(other.lock_path_)) {
  other.fd_ = -1;
}

DirLock& DirLock::operator=(DirLock&& other) noexcept {
  if (this != &other) {
    if (fd_ >= 0) ::close(fd_);
    fd_ = other.fd_;
    lock_path_ = std::move(other.lock_path_);
    other.fd_ = -1;
  }
  return *this;
}

DirLock::~DirLock() {
  if (fd_ >= 0) ::close(fd_);  // closing the last descriptor releases the flock
}

}  // namespace flashmem
