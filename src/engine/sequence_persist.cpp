// Sequence::persist and SequenceOptions::attach (include/flashmem/sequence.h): the runtime
// copies the pages and fills its part of the record (PagedKv::save / restore); the sequence adds
// what only it knows (model, tokens, an open prompt) and commits the record.
#include "flashmem/engine.h"
#include "flashmem/sequence.h"
#include "kv/sequence_entry.h"
#include "kv/store_spec.h"
#include "runtime/sequence_record.h"
#include "util/error.h"

namespace flashmem {
namespace {

PagedKv& paged_runtime(const PagedKv* paged, const std::string& id) {
  if (paged == nullptr)
    fail("sequence '{}': only a paged sequence (a --policy) keeps its KV in the slow tier", id);
  return const_cast<PagedKv&>(*paged);  // the sequence owns it (kv_)
}

}  // namespace

void Sequence::persist(const std::string& id) const {
  PagedKv& paged = paged_runtime(paged_, id);
  SequenceRecord record;
  record.model_id = engine_->model_id();
  record.n_past = n_past_;
  record.prompt_open = prompt_open_;
  record.tokens = tokens_;
  std::unique_ptr<KvStore> pages = paged.save(id, record);
  const StoreSpec spec = parse_store_spec(engine_->options().kv_store);
  // The previous generation of `id` goes once the new record names the new one.
  std::optional<SequenceRecord> previous;
  if (const std::optional<std::string> old = read_entry_record(spec, id)) {
    try {
      previous = decode_sequence_record(*old, id);
    } catch (const Error&) {
      // A damaged record names no pages we could delete; it is replaced below.
    }
  }
  write_entry_record(spec, id, encode_sequence_record(record));
  pages->keep_pages();
  pages.reset();
  if (previous && previous->generation != record.generation)
    remove_entry_pages(spec, id, previous->generation, static_cast<int64_t>(previous->page_digests.size()));
}

void Sequence::attach(const std::string& id) {
  PagedKv& paged = paged_runtime(paged_, id);
  const StoreSpec spec = parse_store_spec(engine_->options().kv_store);
  const std::optional<std::string> bytes = read_entry_record(spec, id);
  if (!bytes) fail("no sequence is persisted under '{}' in the KV store '{}'", id, engine_->options().kv_store);
  const SequenceRecord record = decode_sequence_record(*bytes, id);
  if (record.model_id != engine_->model_id())
    fail("persisted sequence '{}' was written by another model (model id {:016x}, this one {:016x})", id,
         record.model_id, engine_->model_id());
  const auto n_vocab = engine_->model().config().n_vocab;
  for (const int32_t t : record.tokens)
    if (t < -1 || t >= n_vocab) fail("the record of persisted sequence '{}' holds token id {} outside the vocabulary", id, t);
  paged.restore(id, record);
  n_past_ = record.n_past;
  prompt_open_ = record.prompt_open;
  tokens_ = record.tokens;
}

}  // namespace flashmem
