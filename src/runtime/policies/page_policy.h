// One selection policy of the paged runtime as an object: what it observes of the forward pass
// and how it chooses pages. PagedKv (runtime/paged_kv.h) owns the tiers, the spans and the
// accounting; it forwards to its policy exactly the observations the policy declares here and
// asks it for pages at cycle boundaries (right after the prompt and every tau decode steps) and,
// for a per-step policy (quest:K), per decode step and layer.
//
//   policy            observes                                   chooses
//   full window recency:F random:F   nothing                    at cycle boundaries (chooser)
//   full + oracle trace (recorder)   decode attention probabilities   everything
//   oracle:F          the recorded trace (runtime/oracle_trace.h)  top-mass pages per cycle
//   lsa               hidden states of the indexer's target layers  indexer page scores per cycle
//   quest:K           every committed K row (key bounds), every decode step's queries
//                                                                 per step and layer; per cycle
//                                                                 the pages read most often
//
// The choice among scored pages is the chooser's (select/policy.h), shared by every policy.
#pragma once
#include <cstdint>
#include <memory>
#include <span>
#include <vector>

#include "kv/page_layout.h"
#include "model/config.h"
#include "model/kv_backend.h"
#include "runtime/paged_kv_options.h"
#include "select/policy.h"
#include "tensor/dtype.h"
#include "util/byte_codec.h"

namespace flashmem {

class QuestPolicy;

// What a policy may know about the sequence it serves. `options` are PagedKv's after
// fit_to_context; the policy copies what it keeps.
struct PolicyContext {
  const ModelConfig& model;
  DType kv_type;
  const PageLayout& layout;
  const PagedKvOptions& options;
};

class PagePolicy {
 public:
  explicit PagePolicy(std::unique_ptr<SelectionPolicy> chooser) : chooser_(std::move(chooser)) {}
  virtual ~PagePolicy() = default;
  PagePolicy(const PagePolicy&) = delete;
  PagePolicy& operator=(const PagePolicy&) = delete;

  const SelectionPolicy& chooser() const { return *chooser_; }
  // The policy's own resident fraction (used when neither --budget nor --budget-tokens is given).
  double default_fraction() const { return chooser_->default_fraction(); }
  // > 0: every decode step, each layer reads only this many middle pages (choose_step_pages).
  int64_t pages_per_step() const { return chooser_->pages_per_step(); }

  // ---- Observations (PagedKv forwards only what is declared).
  // Backbone layers whose input hidden states observe_hidden() receives (ascending ids).
  const std::vector<int64_t>& hidden_layers() const { return hidden_layers_; }
  // hidden [model dim] entering `layer` at `pos`; positions arrive in order within a layer.
  virtual void observe_hidden(int64_t layer, int64_t pos, const float* hidden) {}
  // True: observe_key() receives every committed K row, prompt, decode and synthetic alike.
  virtual bool observes_keys() const { return false; }
  // k_row [kv_dim] in the cache type, of `layer` at `pos`.
  virtual void observe_key(int64_t pos, int64_t layer, const uint8_t* k_row) {}
  // True: observe_attention() receives every decode step's attention probabilities.
  virtual bool observes_attention() const { return false; }
  // probs [n_heads, n_keys] of `layer` at decode step `decode_step` (position pos), keys in the
  // order of `spans` (the layer's spans of this step).
  virtual void observe_attention(std::span<const KvSpan> spans, int64_t decode_step, int64_t pos,
                                 const float* probs, int64_t n_heads, int64_t n_keys) {}
  // The batch's observations are complete (work deferred to here runs before the commit).
  virtual void end_batch() {}

  // ---- Choices.
  // Per-step policies only (pages_per_step() > 0): the middle pages `layer` reads in this decode
  // step for queries q [n, n_heads, head_dim], among the complete middle pages of `g`; ascending.
  // The default throws Error (a cycle-level policy has no per-step choice).
  virtual std::vector<int64_t> choose_step_pages(int64_t layer, const float* q, int64_t n,
                                                 const PageGeometry& g);
  // Page scores [g.n_pages] for the cycle `cycle` about to start (0 = right after the prompt);
  // empty for unscored policies.
  virtual std::vector<float> cycle_scores(const PageGeometry& g, int64_t cycle) { return {}; }
  // The pages to keep resident for the cycle (the chooser's, select/policy.h; lsa's fallback may
  // widen it).
  virtual std::vector<int64_t> select(const SelectionInput& input) { return chooser_->select(input); }
  // lsa with --lsa-fallback on: cycles since reset() whose selection the fallback widened.
  virtual int64_t fallback_cycles() const { return 0; }

  // ---- State.
  // Forgets the sequence (PagedKv::reset).
  virtual void reset() {}
  // n positions of random KV were committed by PagedKv::fill_synthetic (their K rows already
  // went to observe_key): make the rest of the policy's view consistent (lsa: random keys).
  virtual void fill_synthetic(int64_t n, uint64_t seed) {}
  // Per-page metadata held (always resident), in bytes.
  virtual uint64_t meta_bytes() const { return 0; }
  // This policy as quest:K (its key bounds and per-layer choices), or nullptr.
  virtual const QuestPolicy* quest() const { return nullptr; }

  // ---- Persistence (Sequence::persist): the whole state between batches, so that load_state()
  // on a fresh policy of the same options continues exactly. The base saves the chooser's state
  // (select/policy.h); policies that observe add theirs (lsa: chunk keys, the open chunk's sum,
  // the last hidden states; quest: key bounds and the cycle's read counts). Throws Error for a
  // policy whose state lives outside the sequence (oracle:F and the recorder: the trace), and
  // load_state for bytes this policy did not save.
  virtual void save_state(ByteWriter& out) const;
  virtual void load_state(ByteReader& in);

 protected:
  std::vector<int64_t> hidden_layers_;

 private:
  std::unique_ptr<SelectionPolicy> chooser_;
};

// The policy object of ctx.options.policy. Throws Error on bad options: lsa without an indexer
// or with one that does not match the model, oracle:F without a matching trace, a trace given to
// a policy other than full and oracle:F, lsa options given to another policy.
std::unique_ptr<PagePolicy> make_page_policy(const PolicyContext& ctx);

}  // namespace flashmem
