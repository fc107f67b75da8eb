// kv/page_slabs.h PageSlabs: the RAM store's page slots. Slots are 64-byte aligned, disjoint,
// zeroed, writable to their last byte and never move; slabs double from one 2 MiB page up to
// 32 MiB and each holds as many whole slots as its 2 MiB pages fit (so little is left unused).
#include <gtest/gtest.h>

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <vector>

#include "kv/page_layout.h"
#include "kv/page_slabs.h"

namespace flashmem {
namespace {

// Takes n slots, fills slot i with byte (i % 251) after checking it reads as zero, then checks
// every slot still holds its own byte (no two slots overlap) and starts on a cache line.
std::vector<uint8_t*> fill_slots(PageSlabs& slabs, size_t page_bytes, int n) {
  std::vector<uint8_t*> slots;
  for (int i = 0; i < n; ++i) {
    uint8_t* p = slabs.allocate();
    EXPECT_NE(p, nullptr) << i;
    if (p == nullptr) return slots;
    EXPECT_EQ(reinterpret_cast<uintptr_t>(p) % 64, 0u) << i;
    EXPECT_EQ(p[0], 0) << i;
    EXPECT_EQ(p[page_bytes - 1], 0) << i;
    std::memset(p, i % 251, page_bytes);
    slots.push_back(p);
  }
  for (size_t i = 0; i < slots.size(); ++i) {
    const uint8_t want = static_cast<uint8_t>(i % 251);
    EXPECT_EQ(slots[i][0], want) << i;
    EXPECT_EQ(slots[i][page_bytes - 1], want) << i;
  }
  return slots;
}

TEST(PageSlabs, SlabsDoubleFromOneHugePageTo32MiB) {
  // The 125M bench model's page: 12 layers x 64 tokens x 256 f16 values x K and V, 768 KiB.
  const size_t page = PageLayout::make(12, 64, 256, 2).page_bytes();
  PageSlabs slabs(page);
  EXPECT_EQ(slabs.slot_bytes(), page);
  // Whole slots per slab of 2, 4, 8, 16 and then 32 MiB: 2, 5, 10, 21, 42, 42, ...
  const int per_slab[] = {2, 5, 10, 21, 42, 42};
  int total = 0;
  for (int i = 0; i < 6; ++i) {
    total += per_slab[i];
    std::vector<uint8_t*> slots = fill_slots(slabs, page, per_slab[i]);
    ASSERT_EQ(slots.size(), size_t(per_slab[i]));
    EXPECT_EQ(slabs.slabs(), i + 1) << "after " << total << " slots";
    // A slab's first slot starts its mapping, on a 2 MiB boundary; the rest follow it densely.
    EXPECT_EQ(reinterpret_cast<uintptr_t>(slots[0]) % kHugePageBytes, 0u) << i;
    for (size_t j = 1; j < slots.size(); ++j) EXPECT_EQ(slots[j], slots[0] + j * page) << i << " " << j;
  }
}

TEST(PageSlabs, OddAndLargePagesGetWholeAlignedSlots) {
  // 1000-byte pages take 1024-byte slots (64-byte aligned).
  PageSlabs odd(1000);
  EXPECT_EQ(odd.slot_bytes(), 1024u);
  EXPECT_EQ(fill_slots(odd, 1000, 3000).size(), 3000u);  // 2048 in the first slab, the rest in the second
  EXPECT_EQ(odd.slabs(), 2);
  // A page larger than a slab (a 70B model's 20 MiB page) gets a slab of its own size, rounded
  // to whole 2 MiB pages: once 32 MiB slabs are reached, one slab per page and < 2 MiB unused.
  const size_t big = (size_t{20} << 20) + 4096;
  PageSlabs large(big);
  EXPECT_EQ(fill_slots(large, big, 3).size(), 3u);
  EXPECT_EQ(large.slabs(), 3);
}

}  // namespace
}  // namespace flashmem
