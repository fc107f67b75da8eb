// kv/kv_cache.h: the contiguous cache holds its rows the same way in a vector (small caches) and
// on 2 MiB pages (from 32 MiB on): rows read back as stored, unwritten rows read as zeros, the
// large buffer starts on a huge-page boundary, and values_in_keys (MLA) shares the K rows.
#include <gtest/gtest.h>

#include <cstdint>
#include <cstring>
#include <vector>

#include "kv/kv_cache.h"
#include "util/huge_pages.h"

namespace flashmem {
namespace {

constexpr int64_t kLayers = 3, kKvDim = 256;  // f32 rows of 1 KiB

// [kKvDim] a row whose values name its layer, position and side (0: K, 1: V).
std::vector<float> row_of(int64_t layer, int64_t pos, int side) {
  std::vector<float> row(static_cast<size_t>(kKvDim));
  for (int64_t i = 0; i < kKvDim; ++i) row[static_cast<size_t>(i)] = static_cast<float>(((layer * 100000 + pos) * 2 + side) * 1000 + i);
  return row;
}

bool row_is(const uint8_t* got, const std::vector<float>& want) {
  return std::memcmp(got, want.data(), want.size() * sizeof(float)) == 0;
}

bool row_is_zero(const uint8_t* got) {
  const std::vector<float> zero(static_cast<size_t>(kKvDim), 0.0f);
  return row_is(got, zero);
}

// capacity 1000: 2 x 3 x 1000 KiB = 5.9 MiB (a vector); 8000: 47 MiB (2 MiB pages).
class KvCacheTest : public ::testing::TestWithParam<int64_t> {};

TEST_P(KvCacheTest, RowsReadBackAndUnwrittenRowsAreZero) {
  const int64_t capacity = GetParam();
  KvCache cache(kLayers, capacity, kKvDim, DType::F32, false);
  EXPECT_EQ(cache.total_bytes(), static_cast<uint64_t>(2 * kLayers * capacity * kKvDim * 4));
  const bool large = cache.total_bytes() >= (uint64_t{32} << 20);
  EXPECT_EQ(large, capacity == 8000);
  if (large) {
    EXPECT_EQ(reinterpret_cast<uintptr_t>(cache.k_row(0, 0)) % kHugePageBytes, 0u);
  }
  for (const int64_t layer : {int64_t{0}, kLayers - 1})
    for (const int64_t pos : {int64_t{0}, capacity / 2, capacity - 1})
      cache.store(layer, pos, row_of(layer, pos, 0).data(), row_of(layer, pos, 1).data());
  for (const int64_t layer : {int64_t{0}, kLayers - 1})
    for (const int64_t pos : {int64_t{0}, capacity / 2, capacity - 1}) {
      EXPECT_TRUE(row_is(cache.k_row(layer, pos), row_of(layer, pos, 0))) << layer << " " << pos;
      EXPECT_TRUE(row_is(cache.v_row(layer, pos), row_of(layer, pos, 1))) << layer << " " << pos;
    }
  EXPECT_TRUE(row_is_zero(cache.k_row(1, 1)));
  EXPECT_TRUE(row_is_zero(cache.v_row(1, capacity - 2)));
  // Rows of one layer are contiguous: the spans attention reads.
  EXPECT_EQ(cache.k_row(2, 1) - cache.k_row(2, 0), static_cast<std::ptrdiff_t>(cache.row_bytes()));
}

TEST_P(KvCacheTest, ValuesInKeysShareTheKeyRows) {
  const int64_t capacity = GetParam();
  KvCache cache(kLayers, 2 * capacity, kKvDim, DType::F32, true);
  EXPECT_EQ(cache.total_bytes(), static_cast<uint64_t>(kLayers * 2 * capacity * kKvDim * 4));
  cache.store(1, 7, row_of(1, 7, 0).data(), nullptr);
  EXPECT_EQ(cache.v_row(1, 7), cache.k_row(1, 7));
  EXPECT_TRUE(row_is(cache.v_row(1, 7), row_of(1, 7, 0)));
}

INSTANTIATE_TEST_SUITE_P(SmallAndLarge, KvCacheTest, ::testing::Values(int64_t{1000}, int64_t{8000}));

}  // namespace
}  // namespace flashmem
