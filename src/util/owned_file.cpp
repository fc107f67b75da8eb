#include "util/owned_file.h"

#include <dirent.h>
#include <fcntl.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <cctype>
#include <cerrno>
#include <charconv>
#include <climits>
#include <csignal>
#include <cstring>
#include <filesystem>
#include <random>
#include <utility>

#include "util/error.h"

namespace flashmem {
namespace {

// O_EXCL: never an existing file; O_NOFOLLOW: never through a symlink (O_EXCL alone already
// refuses one, this states it).
constexpr int kCreateFlags = O_RDWR | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC;

// Signals whose default action ends the process and that a user or a pipeline sends: Ctrl-C,
// kill, a closed terminal, `flashmem run ... | head`.
constexpr int kCleanupSignals[] = {SIGINT, SIGTERM, SIGHUP, SIGPIPE};

// ---- signal-cleanup table -------------------------------------------------------------------
// Fixed and preallocated, because the handler may neither allocate nor lock. A slot is written
// only by the thread that claimed it (kFree -> kFilling), read only by the handler once it has
// claimed it (kReady -> kClaimed); a claimed slot is never reused (the process is dying).
// 64 slots: files owned at once are one KV file per live sequence plus one temp file per thread
// writing; a file that finds no slot is left to the stale cleanup.
enum SlotState : int { kFree, kFilling, kReady, kClaimed };
struct CleanupSlot {
  std::atomic<int> state{kFree};
  char path[PATH_MAX];  // absolute, NUL-terminated
};
static_assert(std::atomic<int>::is_always_lock_free, "the signal handler needs lock-free atomics");
constexpr int kCleanupSlots = 64;
CleanupSlot g_cleanup_table[kCleanupSlots];

int register_for_cleanup(const std::string& path) {
  std::error_code error;
  const std::string absolute = std::filesystem::absolute(path, error).string();
  if (error || absolute.size() >= PATH_MAX) return -1;
  for (int i = 0; i < kCleanupSlots; ++i) {
    CleanupSlot& slot = g_cleanup_table[i];
    int expected = kFree;
    if (!slot.state.compare_exchange_strong(expected, kFilling, std::memory_order_acquire)) continue;
    std::memcpy(slot.path, absolute.c_str(), absolute.size() + 1);
    slot.state.store(kReady, std::memory_order_release);
    return i;
  }
  return -1;
}

void unregister_for_cleanup(int index) {
  if (index < 0) return;
  int expected = kReady;  // kClaimed: the handler is removing it and the process is ending
  g_cleanup_table[index].state.compare_exchange_strong(expected, kFree, std::memory_order_acq_rel);
}

extern "C" void remove_owned_files_and_die(int sig) {
  const int saved_errno = errno;
  for (CleanupSlot& slot : g_cleanup_table) {
    int expected = kReady;
    if (slot.state.compare_exchange_strong(expected, kClaimed, std::memory_order_acq_rel))
      ::unlink(slot.path);
  }
  struct sigaction default_action{};
  default_action.sa_handler = SIG_DFL;
  sigemptyset(&default_action.sa_mask);
  ::sigaction(sig, &default_action, nullptr);
  // `sig` is blocked while this handler runs: it stays pending, and the default action ends the
  // process when the handler returns, so the exit status is the signal's.
  ::raise(sig);
  errno = saved_errno;
}

// ---- stale cleanup --------------------------------------------------------------------------

// The PID in `file` if it is named like `name`: prefix, decimal PID, '.' (or '-', the KV file
// names of earlier versions), hex digits, suffix. -1 otherwise.
pid_t owner_of(std::string_view file, const OwnedName& name) {
  if (file.size() <= name.prefix.size() + name.suffix.size() || !file.starts_with(name.prefix) ||
      !file.ends_with(name.suffix))
    return -1;
  const std::string_view middle =
      file.substr(name.prefix.size(), file.size() - name.prefix.size() - name.suffix.size());
  pid_t pid = -1;
  const auto [end, error] = std::from_chars(middle.data(), middle.data() + middle.size(), pid);
  const size_t digits = static_cast<size_t>(end - middle.data());
  if (error != std::errc() || pid <= 0 || digits + 1 >= middle.size() ||
      (middle[digits] != '.' && middle[digits] != '-'))
    return -1;
  for (char c : middle.substr(digits + 1))
    if (!std::isxdigit(static_cast<unsigned char>(c))) return -1;
  return pid;
}

bool starts_with_magic(int fd, off_t size, std::string_view magic) {
  if (magic.empty() || size == 0) return true;
  if (size < static_cast<off_t>(magic.size())) return false;
  std::string head(magic.size(), '\0');
  return ::pread(fd, head.data(), head.size(), 0) == static_cast<ssize_t>(head.size()) && head == magic;
}

// Removes `file` in `dir_fd` if it is a stale file of `name` (see OwnedFile::create_in).
void remove_if_stale(int dir_fd, const char* file, const OwnedName& name) {
  const pid_t owner = owner_of(file, name);
  if (owner <= 0 || owner == ::getpid()) return;
  if (::kill(owner, 0) == 0 || errno != ESRCH) return;  // alive (EPERM: alive, another user's)
  const int fd = ::openat(dir_fd, file, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_NOCTTY | O_CLOEXEC);
  if (fd < 0) return;  // a symlink (ELOOP), already gone, not ours to read
  struct stat st{};
  // flock fails while a live owner holds the file that the PID check cannot see (another PID
  // namespace sharing the directory).
  if (::fstat(fd, &st) == 0 && S_ISREG(st.st_mode) && st.st_uid == ::geteuid() &&
      starts_with_magic(fd, st.st_size, name.magic) && ::flock(fd, LOCK_EX | LOCK_NB) == 0)
    ::unlinkat(dir_fd, file, 0);
  ::close(fd);
}

// One readdir of the directory: cheap next to the file creation that follows it.
void remove_stale_files(int dir_fd, const OwnedName& name) {
  const int list_fd = ::openat(dir_fd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (list_fd < 0) return;  // not listable: nothing to clean, creating may still work
  DIR* dir = ::fdopendir(list_fd);
  if (dir == nullptr) {
    ::close(list_fd);
    return;
  }
  while (const dirent* entry = ::readdir(dir)) remove_if_stale(dir_fd, entry->d_name, name);
  ::closedir(dir);
}

struct DirFd {
  int fd;
  ~DirFd() { ::close(fd); }
};

// Creates a new file of `name` in `dir` (opened as dir_fd, which this closes); returns its
// descriptor and path.
std::pair<int, std::string> create_in_directory(int dir_fd, const std::string& dir,
                                                const OwnedName& name, mode_t mode) {
  const DirFd closer{dir_fd};
  remove_stale_files(dir_fd, name);
  std::random_device random;
  // 64 random bits: a second attempt is only needed if someone else created that very name.
  for (int attempt = 0; attempt < 8; ++attempt) {
    const uint64_t bits = (uint64_t{random()} << 32) | random();
    const std::string file = fmt::format("{}{}.{:016x}{}", name.prefix, ::getpid(), bits, name.suffix);
    const int fd = ::openat(dir_fd, file.c_str(), kCreateFlags, mode);
    if (fd >= 0) return {fd, (std::filesystem::path(dir) / file).string()};
    if (errno != EEXIST) fail("cannot create a file in '{}': {}", dir, std::strerror(errno));
  }
  fail("cannot create a file with a new name in '{}'", dir);
}

}  // namespace

OwnedFile::OwnedFile(int fd, std::string path, bool remove)
    : fd_(fd), path_(std::move(path)), remove_(remove) {
  if (!remove_) return;
  ::flock(fd_, LOCK_EX | LOCK_NB);  // best effort: without it stale cleanup relies on the PID
  slot_ = register_for_cleanup(path_);
}

OwnedFile::OwnedFile(OwnedFile&& other) noexcept
    : fd_(std::exchange(other.fd_, -1)),
      path_(std::move(other.path_)),
      remove_(std::exchange(other.remove_, false)),
      slot_(std::exchange(other.slot_, -1)) {}

OwnedFile& OwnedFile::operator=(OwnedFile&& other) noexcept {
  if (this != &other) {
    reset();
    fd_ = std::exchange(other.fd_, -1);
    path_ = std::move(other.path_);
    remove_ = std::exchange(other.remove_, false);
    slot_ = std::exchange(other.slot_, -1);
  }
  return *this;
}

OwnedFile::~OwnedFile() { reset(); }

void OwnedFile::reset() {
  // Unlink before unregistering: a signal in between finds the file already gone, not left over.
  if (remove_) ::unlink(path_.c_str());
  if (fd_ >= 0) ::close(fd_);
  unregister_for_cleanup(slot_);
  fd_ = -1;
  remove_ = false;
  slot_ = -1;
}

OwnedFile OwnedFile::create(const std::string& path, std::string_view what, mode_t mode) {
  const int fd = ::open(path.c_str(), kCreateFlags, mode);
  if (fd >= 0) return OwnedFile(fd, path, true);
  if (errno == EEXIST || errno == ELOOP)
    fail("{} '{}' already exists: flashmem never overwrites a file it did not create (give a new "
         "file name, or a directory to create the file in)", what, path);
  fail("cannot create {} '{}': {}", what, path, std::strerror(errno));
}

OwnedFile OwnedFile::create_in(const std::string& dir, const OwnedName& name, mode_t mode) {
  const int dir_fd = ::open(dir.c_str(), O_PATH | O_DIRECTORY | O_CLOEXEC);
  if (dir_fd < 0) fail("cannot use directory '{}': {}", dir, std::strerror(errno));
  auto [fd, path] = create_in_directory(dir_fd, dir, name, mode);
  return OwnedFile(fd, std::move(path), true);
}

OwnedFile OwnedFile::create_at(const std::string& path, const OwnedName& name, std::string_view what,
                               mode_t mode) {
  const int dir_fd = ::open(path.c_str(), O_PATH | O_DIRECTORY | O_CLOEXEC);
  if (dir_fd < 0) return create(path, what, mode);  // not a directory: a new file's name
  auto [fd, file] = create_in_directory(dir_fd, path, name, mode);
  return OwnedFile(fd, std::move(file), true);
}

OwnedFile OwnedFile::adopt(int fd, std::string path) { return OwnedFile(fd, std::move(path), false); }

void OwnedFile::keep() {
  unregister_for_cleanup(slot_);
  slot_ = -1;
  remove_ = false;
}

int OwnedFile::close() {
  if (fd_ < 0) return 0;
  const int result = ::close(fd_);
  fd_ = -1;
  return result == 0 ? 0 : errno;
}

void install_cleanup_signal_handlers() {
  struct sigaction action{};
  action.sa_handler = remove_owned_files_and_die;
  sigemptyset(&action.sa_mask);
  for (int sig : kCleanupSignals) sigaddset(&action.sa_mask, sig);  // one cleanup at a time
  for (int sig : kCleanupSignals) {
    struct sigaction previous{};
    if (::sigaction(sig, nullptr, &previous) == 0 && previous.sa_handler == SIG_IGN) continue;
    ::sigaction(sig, &action, nullptr);
  }
}

}  // namespace flashmem
