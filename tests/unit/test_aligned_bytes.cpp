// kv/page_layout.h allocate_aligned_bytes: the paged runtime's buffers (the resident pool's arena,
// the disk window buffer, page copies). Small ones start on a 64-byte boundary; from
// kHugeKvMinBytes on they start on a 2 MiB boundary (huge pages), and in both forms every byte of
// the rounded size can be written and read back.
#include <gtest/gtest.h>

#include <cstdint>
#include <cstring>

#include "kv/page_layout.h"
#include "util/huge_pages.h"

namespace flashmem {
namespace {

// Writes a pattern over the first and last 4 KiB of n bytes at p (the ends of the allocation,
// where a wrong rounding would fall outside it) and checks it reads back.
void expect_ends_writable(uint8_t* p, size_t n) {
  const size_t edge = n < 4096 ? n : 4096;
  std::memset(p, 0x5A, edge);
  EXPECT_EQ(p[edge - 1], 0x5A);
  std::memset(p + n - edge, 0xA5, edge);
  EXPECT_EQ(p[n - 1], 0xA5);
}

TEST(AlignedBytes, SmallBuffersStartOnACacheLine) {
  for (size_t n : {size_t{1}, size_t{64}, size_t{1000}, size_t{768} << 10}) {
    AlignedBytes b = allocate_aligned_bytes(n);
    ASSERT_NE(b, nullptr) << n;
    EXPECT_EQ(reinterpret_cast<uintptr_t>(b.get()) % 64, 0u) << n;
    expect_ends_writable(b.get(), n);
  }
}

TEST(AlignedBytes, LargeBuffersStartOnAHugePage) {
  // The threshold itself and a size that is not a whole number of 2 MiB pages.
  for (size_t n : {kHugeKvMinBytes, kHugeKvMinBytes + 3 * kHugePageBytes + 12345}) {
    AlignedBytes b = allocate_aligned_bytes(n);
    ASSERT_NE(b, nullptr) << n;
    EXPECT_EQ(reinterpret_cast<uintptr_t>(b.get()) % kHugePageBytes, 0u) << n;
    expect_ends_writable(b.get(), n);
  }
}

}  // namespace
}  // namespace flashmem
