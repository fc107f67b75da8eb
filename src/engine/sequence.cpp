#include "flashmem/sequence.h"

#include "flashmem/engine.h"
#include "model/attention.h"
#include "util/error.h"

namespace flashmem {

namespace {

// A contiguous cache's bytes: K and V rows (K alone: values_in_keys) of every layer for the
// whole capacity.
uint64_t contiguous_bytes(const ModelConfig& c, int64_t capacity, DType type) {
  return static_cast<uint64_t>(c.n_layers * c.kv_rows()) * static_cast<uint64_t>(capacity) *
         row_bytes(type, c.kv_dim());
}

}  // namespace

Sequence::Sequence(Engine& engine, const SequenceOptions& options) : engine_(&engine) {
  const ModelConfig& c = engine.model().config();
  const int64_t n_ctx = options.n_ctx > 0 ? options.n_ctx : c.context_length;
  check_kv_type(options.kv_type, c.head_dim);  // before anything is allocated
  if (!options.paged) {
    if (!options.attach.empty())
      fail("attaching persisted sequence '{}' needs a paged sequence (a --policy)", options.attach);
    adopt(std::make_unique<ContiguousKv>(c.n_layers, n_ctx, c.kv_dim(), options.kv_type, c.values_in_keys),
          nullptr);
    return;
  }
  PagedKvOptions o = *options.paged;
  o.store = engine.options().kv_store;
  if (!o.indexer) o.indexer = engine.indexer();
  o.pool = &engine.pool();  // the indexer's work runs on it between passes
  auto paged = std::make_unique<PagedKv>(engine.model(), n_ctx, options.kv_type, o);
  const PagedKv* view = paged.get();
  adopt(std::move(paged), view);
  if (!options.attach.empty()) attach(options.attach);
}

Sequence::Sequence(Engine& engine, std::unique_ptr<PagedKv> paged) : engine_(&engine) {
  const PagedKv* view = paged.get();
  adopt(std::move(paged), view);
}

Sequence::Sequence(Engine& engine, std::unique_ptr<KvBackend> kv) : engine_(&engine) {
  adopt(std::move(kv), nullptr);
}

void Sequence::adopt(std::unique_ptr<KvBackend> kv, const PagedKv* paged) {
  if (!kv) fail("a sequence needs a KV backend");
  const ModelConfig& c = engine_->model().config();
  check_kv_type(kv->type(), c.head_dim);
  paged_ = paged;
  // A paged sequence holds its resident pool; any other backend its whole capacity, allocated
  // up front.
  reserved_bytes_ = paged != nullptr ? paged->resident_pool().stats().budget_bytes
                                     : contiguous_bytes(c, kv->capacity(), kv->type());
  kv_ = std::move(kv);
  engine_->admit(this, reserved_bytes_);
}

Sequence::~Sequence() { engine_->release(this); }

std::optional<LsaStats> Sequence::lsa_stats() const {
  if (paged_ == nullptr) return std::nullopt;
  return paged_->stats();
}

uint64_t Sequence::resident_kv_bytes() const {
  if (paged_ == nullptr) return reserved_bytes_;
  return paged_->resident_pool().stats().resident_bytes;
}

void Sequence::reset() {
  n_past_ = 0;
  prompt_open_ = false;
  tokens_.clear();
  kv_->reset();
}

void Sequence::fill_synthetic(int64_t n, uint64_t seed) {
  if (n < 0 || n > capacity()) fail("a synthetic history of {} positions does not fit the capacity of {}", n, capacity());
  kv_->fill_synthetic(n, seed);
  n_past_ = n;
  tokens_.assign(static_cast<size_t>(n), -1);
}

}  // namespace flashmem
