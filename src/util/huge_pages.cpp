#include "util/huge_pages.h"

#include <sys/mman.h>

#include <cerrno>
#include <cinttypes>
#include <cstdio>
#include <cstring>
#include <utility>

#include "util/error.h"

namespace flashmem {

ThpMode transparent_huge_pages() {
  std::FILE* f = std::fopen("/sys/kernel/mm/transparent_hugepage/enabled", "r");
  if (f == nullptr) return ThpMode::kUnknown;
  char line[128] = {};  // "always [madvise] never": the mode in use is bracketed
  const bool read = std::fgets(line, sizeof line, f) != nullptr;
  std::fclose(f);
  if (!read) return ThpMode::kUnknown;
  if (std::strstr(line, "[always]") != nullptr) return ThpMode::kAlways;
  if (std::strstr(line, "[madvise]") != nullptr) return ThpMode::kMadvise;
  if (std::strstr(line, "[never]") != nullptr) return ThpMode::kNever;
  return ThpMode::kUnknown;
}

std::string_view thp_mode_name(ThpMode mode) {
  switch (mode) {
    case ThpMode::kAlways: return "always";
    case ThpMode::kMadvise: return "madvise";
    case ThpMode::kNever: return "never";
    case ThpMode::kUnknown: break;
  }
  return "unknown";
}

HugePageBuffer::HugePageBuffer(size_t bytes) {
  if (bytes == 0) return;
  if (bytes > SIZE_MAX - 2 * kHugePageBytes) fail("cannot reserve {} bytes of memory: too large", bytes);
  const size_t size = (bytes + kHugePageBytes - 1) / kHugePageBytes * kHugePageBytes;
  // mmap aligns to 4 KiB only: map one huge page more, then unmap the unaligned head and the
  // rest of the tail, leaving [aligned, aligned + size).
  const size_t over = size + kHugePageBytes;
  void* p = ::mmap(nullptr, over, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (p == MAP_FAILED) fail("cannot reserve {} bytes of memory: {}", bytes, std::strerror(errno));
  const auto start = reinterpret_cast<uintptr_t>(p);
  const uintptr_t aligned = (start + kHugePageBytes - 1) / kHugePageBytes * kHugePageBytes;
  if (aligned > start) ::munmap(p, aligned - start);
  const uintptr_t end = start + over, aligned_end = aligned + size;
  if (end > aligned_end) ::munmap(reinterpret_cast<void*>(aligned_end), end - aligned_end);
  data_ = reinterpret_cast<uint8_t*>(aligned);
  size_ = size;
  advise_huge_pages(data_, size_);
}

// Advice only: a kernel without THP refuses it (EINVAL), and the 4 KiB pages still work.
void advise_huge_pages(void* p, size_t bytes) noexcept { ::madvise(p, bytes, MADV_HUGEPAGE); }

HugePageBuffer::~HugePageBuffer() { release(); }

HugePageBuffer::HugePageBuffer(HugePageBuffer&& other) noexcept
    : data_(std::exchange(other.data_, nullptr)), size_(std::exchange(other.size_, 0)) {}

HugePageBuffer& HugePageBuffer::operator=(HugePageBuffer&& other) noexcept {
  if (this != &other) {
    release();
    data_ = std::exchange(other.data_, nullptr);
    size_ = std::exchange(other.size_, 0);
  }
  return *this;
}

void HugePageBuffer::make_read_only() {
  if (data_ != nullptr && ::mprotect(data_, size_, PROT_READ) != 0)
    fail("cannot make {} bytes of memory read-only: {}", size_, std::strerror(errno));
}

void HugePageBuffer::release() {
  if (data_ != nullptr) ::munmap(data_, size_);
  data_ = nullptr;
  size_ = 0;
}

size_t huge_page_bytes(const void* p) {
  std::FILE* f = std::fopen("/proc/self/smaps", "r");
  if (f == nullptr) return 0;
  const auto addr = reinterpret_cast<uintptr_t>(p);
  char line[512];  // a mapping's header line ends in a path, which may be longer: fgets splits it
  bool line_start = true;  // the chunk fgets read begins a line
  bool inside = false;
  size_t kb = 0;
  while (std::fgets(line, sizeof line, f) != nullptr) {
    const bool starts = line_start;
    line_start = std::strchr(line, '\n') != nullptr;
    if (!starts) continue;
    // A mapping's header line starts "lo-hi perms ..." in lowercase hex; its field lines start
    // with a capitalized name ("AnonHugePages:").
    const char c0 = line[0];
    uintmax_t lo = 0, hi = 0;
    if (((c0 >= '0' && c0 <= '9') || (c0 >= 'a' && c0 <= 'f')) && std::sscanf(line, "%jx-%jx", &lo, &hi) == 2) {
      if (inside) break;  // past the mapping that held p
      inside = addr >= lo && addr < hi;
      continue;
    }
    unsigned long value = 0;
    if (inside && std::sscanf(line, "AnonHugePages: %lu kB", &value) == 1) {
      kb = value;
      break;
    }
  }
  std::fclose(f);
  return kb * 1024;
}

}  // namespace flashmem
