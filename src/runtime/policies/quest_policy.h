// quest:K as a policy object (see the tier mapping in runtime/paged_kv.h): key bounds kept per
// page as K rows are committed; every decode step, per layer, the K middle pages with the
// highest bounds for the layer's queries (select/quest.h); at each cycle boundary, the pages read
// most often in the ending cycle (the chooser keeps them resident).
#pragma once
#include <vector>

#include "runtime/policies/page_policy.h"
#include "select/quest.h"

namespace flashmem {

class QuestPolicy final : public PagePolicy {
 public:
  QuestPolicy(std::unique_ptr<SelectionPolicy> chooser, const PolicyContext& ctx);

  bool observes_keys() const override { return true; }
  void observe_key(int64_t pos, int64_t layer, const uint8_t* k_row) override;
  std::vector<int64_t> choose_step_pages(int64_t layer, const float* q, int64_t n,
                                         const PageGeometry& g) override;
  // The (step, layer) reads of each page in the ending cycle; the counts restart.
  std::vector<float> cycle_scores(const PageGeometry& g, int64_t cycle) override;
  void reset() override;
  uint64_t meta_bytes() const override { return key_bounds_.bytes(); }
  const QuestPolicy* quest() const override { return this; }
  void save_state(ByteWriter& out) const override;
  void load_state(ByteReader& in) override;

  // The per-page key bounds (tests, diagnostics).
  const PageKeyBounds& key_bounds() const { return key_bounds_; }
  // The middle pages each layer read in the last decode step ([n_layers], ascending).
  const std::vector<std::vector<int64_t>>& layer_pages() const { return layer_pages_; }

 private:
  DType kv_type_;
  PageLayout layout_;
  QuestShape shape_;
  PageKeyBounds key_bounds_;                     // [n_pages] key min/max per layer
  std::vector<float> key_row_;                   // [kv_dim] one K row in f32
  std::vector<float> cycle_reads_;               // [n_pages] (step, layer) reads this cycle
  std::vector<std::vector<int64_t>> layer_pages_;  // [n_layers] middle pages read last step
  std::vector<float> scores_;                    // [n candidate pages] scratch
};

}  // namespace flashmem
