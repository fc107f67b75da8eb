// Memory on 2 MiB pages where the kernel allows it (Linux transparent huge pages, THP). A buffer
// streamed once per decode step and larger than the TLB's reach (a few thousand entries: ~12 MiB
// on 4 KiB pages) costs a page walk every 4 KiB, and the hardware prefetchers stop at every
// 4 KiB page boundary; on 2 MiB pages neither happens. Measured on the 125M Q8_0 bench model
// (docs/BENCHMARKS.md, tenth and eleventh sessions): the KV cache on huge pages (kv/kv_cache.cpp)
// made 16K decode 1.15x faster; the weights (--weights-memory huge) 1.06-1.16x at 1K context,
// and at 16K slower in one session, faster in the other.
#pragma once
#include <cstddef>
#include <cstdint>
#include <string_view>

namespace flashmem {

// 2 MiB, the x86-64 huge page (a PMD entry).
inline constexpr size_t kHugePageBytes = size_t{2} << 20;
// KV buffers of at least this many bytes go on huge pages (the contiguous cache, the resident
// pool's arena, the disk window buffer): rounding up to whole 2 MiB pages then adds at most 6%,
// and below it a 4 KiB-page buffer is mostly within the TLB's reach anyway.
inline constexpr size_t kHugeKvMinBytes = size_t{32} << 20;

// Asks the kernel to back [p, p + bytes) with huge pages (madvise MADV_HUGEPAGE); p should start
// on a 2 MiB boundary. A hint: when the kernel declines, the memory stays on 4 KiB pages.
void advise_huge_pages(void* p, size_t bytes) noexcept;

// The kernel's THP mode (/sys/kernel/mm/transparent_hugepage/enabled): always (every large
// anonymous mapping), madvise (mappings that ask with MADV_HUGEPAGE, as HugePageBuffer does),
// never, or unknown (no such file: another kernel or OS).
enum class ThpMode { kAlways, kMadvise, kNever, kUnknown };
ThpMode transparent_huge_pages();
// "always" | "madvise" | "never" | "unknown"
std::string_view thp_mode_name(ThpMode mode);

// Zeroed anonymous memory starting on a 2 MiB boundary, its size rounded up to whole 2 MiB
// pages, marked MADV_HUGEPAGE so that the kernel backs it with huge pages when it has them (4 KiB
// pages otherwise: the memory works either way). Owns the mapping; movable, not copyable.
class HugePageBuffer {
 public:
  HugePageBuffer() = default;
  // Throws Error "cannot reserve N bytes of memory: why" when the mapping fails (no memory, an
  // address-space limit).
  explicit HugePageBuffer(size_t bytes);
  ~HugePageBuffer();
  HugePageBuffer(HugePageBuffer&& other) noexcept;
  HugePageBuffer& operator=(HugePageBuffer&& other) noexcept;
  HugePageBuffer(const HugePageBuffer&) = delete;
  HugePageBuffer& operator=(const HugePageBuffer&) = delete;

  uint8_t* data() const { return data_; }
  size_t size() const { return size_; }  // whole 2 MiB pages, >= the bytes asked for
  // From now on reads only: a stray write faults instead of changing the contents.
  void make_read_only();

 private:
  void release();
  uint8_t* data_ = nullptr;
  size_t size_ = 0;
};

// Bytes of the mapping that holds `p` which the kernel backs with huge pages right now
// (AnonHugePages of its /proc/self/smaps entry; 0 if unknown or p is not mapped).
size_t huge_page_bytes(const void* p);

}  // namespace flashmem
