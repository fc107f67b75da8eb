// PagedKv's persistence (runtime/paged_kv.h "Persistence"): the full pages go to an entry of the
// slow tier (kv/sequence_entry.h), everything else to the record (runtime/sequence_record.h).
#include <fmt/format.h>

#include <cstring>

#include "kv/sequence_entry.h"
#include "kv/store_spec.h"
#include "runtime/paged_kv.h"
#include "util/error.h"

namespace flashmem {

PersistSettings persist_settings(const ModelConfig& config, DType type, const PagedKvOptions& options) {
  const PolicySpec& p = options.policy;
  PersistSettings s = {
      {"kv_type", std::string(dtype_info(type).name)},
      {"n_layers", fmt::format("{}", config.n_layers)},
      {"kv_dim", fmt::format("{}", config.kv_dim())},
      {"page_tokens", fmt::format("{}", options.page_tokens)},
      {"sink_pages", fmt::format("{}", options.sink_pages)},
      {"recent_pages", fmt::format("{}", options.recent_pages)},
      {"tau", fmt::format("{}", options.tau)},
      {"budget", fmt::format("{}", options.budget)},
      {"policy", to_string(p)},
      {"policy_seed", fmt::format("{}", p.seed)},
      {"lsa_topk", fmt::format("{}", p.lsa_topk)},
      {"lsa_page_score", p.lsa_page_score == LsaPageScore::kCount ? "count" : "max"},
      {"lsa_fallback", p.lsa_fallback == LsaFallback::kOn ? "on" : "off"},
  };
  // Only when set: records written before --budget-tokens existed lack the key and still attach
  // to runs without it, while check_persist_settings refuses any other combination.
  if (options.budget_tokens > 0) s.emplace_back("budget_tokens", fmt::format("{}", options.budget_tokens));
  // Only with lookahead: records written before --lsa-prefetch existed attach to K = 0 runs.
  if (p.lsa_prefetch > 0) s.emplace_back("lsa_prefetch", fmt::format("{}", p.lsa_prefetch));
  // Only lsa reads the indexer; other policies ignore whichever one the engine holds.
  const bool lsa = p.kind == PolicyKind::kLsa && options.indexer != nullptr;
  s.emplace_back("indexer", lsa ? fmt::format("{:016x}", options.indexer->checksum()) : "none");
  return s;
}

PersistSettings PagedKv::persist_settings() const { return flashmem::persist_settings(config_, type_, options_); }

std::unique_ptr<KvStore> PagedKv::save(const std::string& id, SequenceRecord& record) {
  check_sequence_id(id);
  ByteWriter policy_state;
  policy_->save_state(policy_state);  // first: oracle policies refuse before anything is written
  const StoreSpec spec = parse_store_spec(options_.store);
  record.settings = persist_settings();
  record.capacity = capacity_;
  record.generation = new_entry_generation();
  std::unique_ptr<KvStore> entry =
      create_entry_pages(spec, id, record.generation, layout_.page_bytes(), layout_.n_layers);
  const int64_t n_tokens = pool_->n_tokens();
  const int64_t full_pages = n_tokens / options_.page_tokens;
  AlignedBytes page = allocate_aligned_bytes(layout_.page_bytes());  // [page_bytes]
  if (!page) fail("out of memory copying KV pages");
  record.page_digests.clear();
  for (int64_t p = 0; p < full_pages; ++p) {
    StoreStatus status = store_->read_page(p, page.get());
    if (status != StoreStatus::kOk)
      fail("persisting sequence '{}': KV page {} could not be read from the store: {} ({})", id, p,
           describe(status), to_string(status));
    status = entry->write_page(p, page.get());
    if (status != StoreStatus::kOk)
      fail("persisting sequence '{}': KV page {} could not be written: {} ({})", id, p,
           describe(status), to_string(status));
    record.page_digests.push_back(entry->page_digest(p).value());
  }
  const bool open = n_tokens > full_pages * options_.page_tokens;
  record.open_page.clear();
  if (open) {
    const uint8_t* cell = pool_->open_cell();
    record.open_page.assign(cell, cell + layout_.page_bytes());
  }
  // A selection chosen ahead of its boundary (--lsa-prefetch) is not part of the record: it is
  // dropped here too, so this runtime and one attaching the record both choose at the boundary.
  next_ready_ = false;
  next_selection_.clear();
  next_page_scores_.clear();
  record.decoding = decoding_;
  record.decode_steps = decode_steps_;
  record.cycles = cycles_;
  record.selection = pool_->selection();
  record.policy_state = policy_state.take();
  return entry;
}

void PagedKv::restore(const std::string& id, const SequenceRecord& record) {
  check_persist_settings(record.settings, persist_settings(), id);
  if (pool_->n_tokens() != 0) fail("internal: a sequence is attached to a runtime that holds KV");
  // The capacity sizes the resident pool, which decides what a selection keeps: a sequence that
  // has made selections continues exactly only with the same capacity. Before its prompt ended
  // the pool only caches, so a prompt prefix continues in any capacity that holds it.
  if (record.decoding && record.capacity != capacity_)
    fail("persisted sequence '{}' was saved with capacity={}; this sequence has capacity={}", id,
         record.capacity, capacity_);
  if (record.n_past > capacity_)
    fail("persisted sequence '{}' holds {} positions, more than the capacity {}", id, record.n_past, capacity_);
  const int64_t full_pages = record.n_past / options_.page_tokens;
  const bool open = record.n_past > full_pages * options_.page_tokens;
  if (static_cast<int64_t>(record.page_digests.size()) != full_pages ||
      record.open_page.size() != (open ? layout_.page_bytes() : 0))
    fail("the record of persisted sequence '{}' does not describe {} positions of {}-token pages", id,
         record.n_past, options_.page_tokens);
  const StoreSpec spec = parse_store_spec(options_.store);
  std::unique_ptr<KvStore> entry = open_entry_pages(spec, id, record.generation, layout_.page_bytes(),
                                                    layout_.n_layers, record.page_digests);
  AlignedBytes page = allocate_aligned_bytes(layout_.page_bytes());  // [page_bytes]
  if (!page) fail("out of memory copying KV pages");
  // Committing the pages in order leaves the pool as the sequence's own commits left it: sink and
  // recency tail resident, the open page in its cell; the selection is pinned below.
  for (int64_t p = 0; p < full_pages; ++p) {
    const StoreStatus status = entry->read_page(p, page.get());
    if (status != StoreStatus::kOk)
      fail("persisted sequence '{}': KV page {} could not be read: {} ({})", id, p, describe(status),
           to_string(status));
    const StoreStatus written = pool_->ingest_page(p, page.get());
    if (written != StoreStatus::kOk) fail_store_write(written);
  }
  if (open) {
    std::memcpy(pool_->open_cell(), record.open_page.data(), record.open_page.size());
    const StoreStatus status = pool_->commit(record.n_past);
    if (status != StoreStatus::kOk) fail_store_write(status);
  }
  ByteReader state(record.policy_state, "the policy state of persisted sequence '" + id + "'");
  policy_->load_state(state);
  state.expect_end();
  decoding_ = record.decoding;
  decode_steps_ = record.decode_steps;
  // cycles_ counts this runtime's cycles (accounting): only oracle:F, which is never persisted,
  // reads the cycle index.
  for (int64_t p : record.selection)
    if (p < 0 || p > pool_->open_page())
      fail("the record of persisted sequence '{}' selects page {} beyond its history", id, p);
  selection_ = record.selection;
  pool_->set_selection(selection_);
}

}  // namespace flashmem
