#include "flashmem/sequence.h"

#include "flashmem/engine.h"
#include "model/attention.h"
#include "util/error.h"

namespace flashmem {

namespace {

// A contiguous cache's bytes: K and V rows of every layer for the whole capacity.
uint64_t contiguous_bytes(const ModelConfig& c, int64_t capacity, DType type) {
  return static_cast<uint64_t>(c.n_layers) * 2 * static_cast<uint64_t>(capacity) *
         row_bytes(type, c.kv_dim());
}

}  // namespace

Sequence::Sequence(Engine& engine, const SequenceOptions& options) : engine_(&engine) {
  const ModelConfig& c = engine.model().config();
  const int64_t n_ctx = options.n_ctx > 0 ? options.n_ctx : c.context_length;
  check_kv_type(options.kv_type, c.head_dim);
  if (!options.paged) {
    kv_ = std::make_unique<ContiguousKv>(c.n_layers, n_ctx, c.kv_dim(), options.kv_type);
    reserved_bytes_ = contiguous_bytes(c, n_ctx, options.kv_type);  // allocated up front
  } else {
    PagedKvOptions o = *options.paged;
    o.store = engine.options().kv_store;
    if (!o.indexer) o.indexer = engine.indexer();
    o.pool = &engine.pool();  // the indexer's work runs on it between passes
    auto paged = std::make_unique<PagedKv>(engine.model(), n_ctx, options.kv_type, o);
    paged_ = paged.get();
    reserved_bytes_ = paged->resident_pool().stats().budget_bytes;
    kv_ = std::move(paged);
  }
  attach(engine);
}

Sequence::Sequence(Engine& engine, std::unique_ptr<PagedKv> paged) : engine_(&engine) {
  if (!paged) fail("a sequence needs a KV backend");
  check_kv_type(paged->type(), engine.model().config().head_dim);
  paged_ = paged.get();
  reserved_bytes_ = paged->resident_pool().stats().budget_bytes;
  kv_ = std::move(paged);
  attach(engine);
}

Sequence::Sequence(Engine& engine, std::unique_ptr<KvBackend> kv) : engine_(&engine) {
  if (!kv) fail("a sequence needs a KV backend");
  check_kv_type(kv->type(), engine.model().config().head_dim);
  reserved_bytes_ = contiguous_bytes(engine.model().config(), kv->capacity(), kv->type());
  kv_ = std::move(kv);
  attach(engine);
}

void Sequence::attach(Engine& engine) { engine.admit(this, reserved_bytes_); }

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
  kv_->reset();
}

void Sequence::fill_synthetic(int64_t n, uint64_t seed) {
  if (n < 0 || n > capacity()) fail("a synthetic history of {} positions does not fit the capacity of {}", n, capacity());
  kv_->fill_synthetic(n, seed);
  n_past_ = n;
}

}  // namespace flashmem
