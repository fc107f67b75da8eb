// Test backend: a contiguous cache whose decode spans are restricted to given pages (plus the
// step's own positions) — attention computed directly over exactly the pages a policy chose, to
// compare with what the paged runtime computed from its resident set.
#pragma once
#include <algorithm>
#include <cstdint>
#include <span>
#include <vector>

#include "model/kv_backend.h"
#include "model/model.h"

namespace flashmem {

class MaskedKv final : public KvBackend {
 public:
  MaskedKv(const ModelConfig& c, int64_t capacity, int64_t page_tokens)
      : inner_(c.n_layers, capacity, c.kv_dim(), DType::F16, c.values_in_keys), page_tokens_(page_tokens) {}
  std::vector<int64_t> pages;                    // history pages every layer reads in decode
  std::vector<std::vector<int64_t>> layer_pages;  // [n_layers] per-layer pages; overrides `pages`
  bool decoding = false;                         // prompt batches read everything
  DType type() const override { return inner_.type(); }
  int64_t capacity() const override { return inner_.capacity(); }
  void begin_batch(int64_t pos0, int64_t n) override {
    pos0_ = pos0;
    n_ = n;
    inner_.begin_batch(pos0, n);
  }
  void store(int64_t layer, int64_t pos, const float* k, const float* v) override {
    inner_.store(layer, pos, k, v);
  }
  std::span<const KvSpan> spans(int64_t layer) override {
    if (!decoding) return inner_.spans(layer);
    spans_.clear();
    const size_t row = inner_.cache().row_bytes();
    const KvSpan all = inner_.spans(layer)[0];
    const auto& chosen = layer_pages.empty() ? pages : layer_pages[static_cast<size_t>(layer)];
    for (int64_t p : chosen) {
      const int64_t first = p * page_tokens_, n = std::min(page_tokens_, pos0_ - first);
      if (n > 0) spans_.push_back({first, n, all.k + first * row, all.v + first * row});
    }
    spans_.push_back({pos0_, n_, all.k + pos0_ * row, all.v + pos0_ * row});
    return spans_;
  }
  void end_batch(bool) override {}
  void reset() override { inner_.reset(); }
  void fill_synthetic(int64_t n, uint64_t seed) override { inner_.fill_synthetic(n, seed); }

 private:
  ContiguousKv inner_;
  int64_t page_tokens_, pos0_ = 0, n_ = 0;
  std::vector<KvSpan> spans_;
};

}  // namespace flashmem
