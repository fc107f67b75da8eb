// Test helpers for the KV tiers: page bytes derived from (position, layer, K/V, byte index), so
// any byte served for the wrong page, position or layer (a stale cell, a torn copy) is detected.
#pragma once
#include <unistd.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <string>
#include <vector>

#include "kv/disk_store.h"
#include "kv/page_layout.h"
#include "kv/resident_pool.h"

namespace flashmem::test {

inline uint64_t mix64(uint64_t x) {  // splitmix64 finalizer: distinct inputs -> unrelated words
  x += 0x9e3779b97f4a7c15ull;
  x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
  x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
  return x ^ (x >> 31);
}

// One position's K (kv = 0) or V (kv = 1) row of one layer: n bytes.
inline void fill_row(uint8_t* dst, size_t n, int64_t pos, int64_t layer, int kv) {
  const uint64_t seed = mix64((static_cast<uint64_t>(pos) << 20) ^ (static_cast<uint64_t>(layer) << 1) ^ kv);
  for (size_t i = 0; i < n; i += 8) {
    const uint64_t word = mix64(seed + i);
    std::memcpy(dst + i, &word, std::min<size_t>(8, n - i));
  }
}

// Appends position `pos` of every layer to `pool`, its K and V rows made by fill_row; `k` and
// `v` [row_bytes] are the caller's scratch.
inline void append_pattern_position(ResidentPool& pool, int64_t n_layers, int64_t pos, std::vector<uint8_t>& k,
                                    std::vector<uint8_t>& v) {
  for (int64_t layer = 0; layer < n_layers; ++layer) {
    fill_row(k.data(), k.size(), pos, layer, 0);
    fill_row(v.data(), v.size(), pos, layer, 1);
    pool.append(layer, pos, k.data(), v.data());
  }
}

// The whole page `page` [page_bytes].
inline std::vector<uint8_t> make_page(const PageLayout& layout, int64_t page) {
  std::vector<uint8_t> bytes(layout.page_bytes());
  for (int64_t l = 0; l < layout.n_layers; ++l)
    for (int64_t s = 0; s < layout.page_tokens; ++s) {
      const int64_t pos = layout.first_pos(page) + s;
      fill_row(bytes.data() + layout.k_row(l, s), layout.row_bytes(), pos, l, 0);
      fill_row(bytes.data() + layout.v_row(l, s), layout.row_bytes(), pos, l, 1);
    }
  return bytes;
}

// "" if the first n_tokens positions of `data` are page `page`'s rows in every layer, else where
// the first mismatch is.
inline std::string check_page(const PageLayout& layout, int64_t page, const uint8_t* data,
                              int64_t n_tokens) {
  std::vector<uint8_t> row(layout.row_bytes());
  for (int64_t l = 0; l < layout.n_layers; ++l)
    for (int64_t s = 0; s < n_tokens; ++s)
      for (int kv = 0; kv < 2; ++kv) {
        fill_row(row.data(), row.size(), layout.first_pos(page) + s, l, kv);
        const size_t at = kv == 0 ? layout.k_row(l, s) : layout.v_row(l, s);
        if (std::memcmp(data + at, row.data(), row.size()) != 0)
          return "page " + std::to_string(page) + " layer " + std::to_string(l) + " slot " +
                 std::to_string(s) + (kv ? " V" : " K") + " differs";
      }
  return "";
}

// Decode step `pos` of a pattern run: the resident view over positions 0..pos misses nothing and
// serves every page's pattern; then the view is released and the position committed. "" or what
// went wrong.
inline std::string check_view_and_commit(ResidentPool& pool, const PageLayout& layout, int64_t pos) {
  ResidentView view = pool.resident_pages(pos + 1);
  if (!view.missed().empty()) return std::to_string(view.missed().size()) + " pages missed";
  for (const PageView& p : view.pages())
    if (std::string wrong = check_page(layout, p.page, p.data, p.n_tokens); !wrong.empty()) return wrong;
  view.release();  // views are released before a commit (contract)
  if (pool.commit(pos + 1) != StoreStatus::kOk) return "commit failed";
  return "";
}

// FileIo that injects faults into the real calls. All knobs are plain fields set by the test
// between operations (single-threaded use).
class FaultyFileIo final : public FileIo {
 public:
  int write_errno = 0;          // nonzero: pwrite fails with this errno...
  int write_fail_after = 0;     // ...after this many successful pwrite calls
  size_t max_write_chunk = 0;   // nonzero: every pwrite transfers at most this many bytes
  bool write_returns_zero = false;
  int read_errno = 0;           // nonzero: pread fails with this errno
  size_t max_read_chunk = 0;    // nonzero: every pread transfers at most this many bytes
  bool read_returns_zero = false;
  int64_t flip_offset = -1;     // >= 0: a pread covering this file offset gets one bit flipped
  int writes = 0, reads = 0;    // calls seen

  int64_t pwrite(int fd, const void* buf, size_t n, int64_t offset) override {
    ++writes;
    if (write_returns_zero) return 0;
    if (write_errno != 0) {
      if (write_fail_after <= 0) return -write_errno;
      --write_fail_after;
    }
    if (max_write_chunk != 0) n = std::min(n, max_write_chunk);
    return posix_file_io().pwrite(fd, buf, n, offset);
  }
  int64_t pread(int fd, void* buf, size_t n, int64_t offset) override {
    ++reads;
    if (read_errno != 0) return -read_errno;
    if (read_returns_zero) return 0;
    if (max_read_chunk != 0) n = std::min(n, max_read_chunk);
    const int64_t r = posix_file_io().pread(fd, buf, n, offset);
    if (r > 0 && flip_offset >= offset && flip_offset < offset + r)
      static_cast<uint8_t*>(buf)[flip_offset - offset] ^= 0x10;
    return r;
  }
};

// A fresh path under the build's temp dir, unique per test name.
inline std::string temp_kv_path(const std::string& name) {
  return (std::string(::testing::TempDir()) + "flashmem_kv_" + std::to_string(::getpid()) + "_" + name + ".kv");
}

}  // namespace flashmem::test
