// One writer per output directory (or output file): `flashmem dump --out DIR`, `eval --out DIR`,
// `train-indexer --out FILE` and `train-lm --out FILE` hold a lock for as long as they write, so
// two processes never interleave their results in one place (the second one stops at once with
// a clear error instead of silently losing the first one's cells or files).
//
// Mechanism: flock(LOCK_EX | LOCK_NB) on a lock file — DIR/.flashmem.lock for a directory,
// DIR/.NAME.lock beside an output file NAME. The file holds the owner's pid (for the message
// only; the kernel's lock is what counts, so a killed owner never leaves a stale lock: the lock
// goes with its file descriptor). The lock file itself is left in place (removing it would
// race with a process that just opened it).
#pragma once
#include <string>

namespace flashmem {

class DirLock {
 public:
  // Locks directory `dir` (which must exist). Throws Error "another flashmem process (pid N) is
  // writing DIR" when another process holds it, or naming the I/O failure.
  static DirLock lock_directory(const std::string& dir);
  // Locks the output file `path` (its directory must exist; the file need not).
  static DirLock lock_file(const std::string& path);

  DirLock(DirLock&& other) noexcept;
  DirLock& operator=(DirLock&& other) noexcept;
  DirLock(const DirLock&) = delete;
  DirLock& operator=(const DirLock&) = delete;
  ~DirLock();  // releases the lock

  const std::string& lock_path() const { return lock_path_; }

 private:
  DirLock(int fd, std::string lock_path) : fd_(fd), lock_path_(std::move(lock_path)) {}
  static DirLock acquire(const std::string& lock_path, const std::string& what);

  int fd_ = -1;
  std::string lock_path_;
};

}  // namespace flashmem
