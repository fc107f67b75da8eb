// Files this process creates and must never leave behind or let clobber someone else's: KV store
// files (`--kv-store disk:PATH`) and the temp files of atomic writes. Every such file is opened
// here, so each one is
//   - new: O_CREAT|O_EXCL|O_NOFOLLOW|O_CLOEXEC. An existing file (a user's, the model itself) or
//     a planted symlink is refused with an error that names it, never opened or truncated;
//   - unpredictable when created in a directory: PREFIX + owner PID + '.' + 16 random hex digits
//     + SUFFIX, so nobody can plant that name in a shared directory beforehand;
//   - locked (flock) while open, so a cleaner can tell a live owner even across PID namespaces;
//   - removed when its OwnedFile is destroyed (unless kept), on SIGINT/TERM/HUP/PIPE once
//     install_cleanup_signal_handlers() has run, and after kill -9 by the next creation of a file
//     of the same name pattern in the same directory (stale cleanup, see OwnedFile::create_in).
// A signal that arrives between a file's creation and its registration (microseconds) leaves it
// for the stale cleanup too.
#pragma once
#include <sys/types.h>

#include <string>
#include <string_view>

namespace flashmem {

// What the files of one kind are called inside a directory, and how stale cleanup recognises them.
struct OwnedName {
  std::string prefix;      // name = prefix + PID + '.' + hex digits + suffix
  std::string suffix;
  std::string_view magic;  // the first bytes of every such file; "" = any content. Empty files
                           // (killed before their first write) always qualify.
};

// An open file descriptor this process owns and, for a file it created, the duty to remove it.
// Move-only. Not thread-safe: one owner at a time.
class OwnedFile {
 public:
  static constexpr mode_t kPrivate = 0600;

  OwnedFile() = default;
  OwnedFile(OwnedFile&& other) noexcept;
  OwnedFile& operator=(OwnedFile&& other) noexcept;
  OwnedFile(const OwnedFile&) = delete;
  OwnedFile& operator=(const OwnedFile&) = delete;
  ~OwnedFile();  // closes the descriptor, then removes the file unless kept

  // Creates the new file `path` (read-write). Throws Error naming `path` if anything exists there
  // (file, directory, symlink) or it cannot be created. `what` names the file in messages.
  static OwnedFile create(const std::string& path, std::string_view what, mode_t mode = kPrivate);
  // Creates a file with an unpredictable `name` in the directory `dir`, after removing the stale
  // files of `name` there: name pattern, owner PID gone (kill(pid, 0) fails with ESRCH), not
  // locked, a regular file (not a symlink) of our user, starting with name.magic (or empty).
  // Throws Error if `dir` is not a directory or no file can be created in it.
  static OwnedFile create_in(const std::string& dir, const OwnedName& name, mode_t mode = kPrivate);
  // `path` as the user gave it: an existing directory -> create_in(path, name); anything else
  // -> create(path, what).
  static OwnedFile create_at(const std::string& path, const OwnedName& name, std::string_view what,
                             mode_t mode = kPrivate);
  // Takes over `fd`, opened on a file this process did not create: closed on destruction, never
  // removed.
  static OwnedFile adopt(int fd, std::string path);

  int fd() const { return fd_; }
  const std::string& path() const { return path_; }
  // The file outlives this object (it was renamed, or is kept on purpose): it is no longer removed
  // on destruction or on a signal.
  void keep();
  // Closes the descriptor now; returns 0, or the errno of close(2) (a deferred write error).
  int close();

 private:
  OwnedFile(int fd, std::string path, bool remove);
  void reset();  // close, remove unless kept, unregister

  int fd_ = -1;
  std::string path_;
  bool remove_ = false;  // this object must remove path_
  int slot_ = -1;        // index in the signal-cleanup table, -1 = not registered
};

// Removes registered files when SIGINT, SIGTERM, SIGHUP or SIGPIPE arrives, then dies of that
// signal (its default action), so the exit status is the signal's. A signal ignored at start
// (nohup, a background job) stays ignored. Call once, early in main().
void install_cleanup_signal_handlers();

}  // namespace flashmem
