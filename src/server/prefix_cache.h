// Conversation reuse (issue 17): the KV of a request's prompt prefix stays in the disk slow tier
// as a persisted sequence (Sequence::persist), keyed by a hash of the model, the sequence's
// settings and the prefix's tokens; a later request whose prompt extends a kept prefix attaches
// it (SequenceOptions::attach) and prefills only the rest.
//
// Which prefixes: one per request, the last multiple of the engine's max_batch before the
// prompt's end, kept while the prompt is still open (between two parts the scheduler feeds). A
// reused prompt therefore resumes at a chunk boundary and is cut into the chunks a cold one gets
// from position 0: the continuation's bits equal a cold prefill's (BatchItem::prompt_continues),
// for every policy, since nothing has been selected yet at that point.
//
// Entries are sequences named "pfx-HASH" in the disk tier's directory; their bytes count against
// a quota, and the least recently used go first (their use time is kept in memory; after a
// restart the index is rebuilt from the records, each checksummed, in order of their files'
// modification time). Damaged records are deleted, other models' entries are left alone.
//
// Threads: the scheduler's decode thread only (every call uses the engine).
#pragma once
#include <cstdint>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <unordered_map>

#include "flashmem/engine.h"
#include "flashmem/sequence.h"

namespace flashmem::server {

struct PrefixHit {
  std::string id;      // the entry to attach
  int64_t tokens = 0;  // prompt tokens it holds
};

class PrefixCache {
 public:
  // `engine`'s kv_store must be disk:DIR (Error otherwise); quota_bytes > 0.
  PrefixCache(Engine& engine, uint64_t quota_bytes);

  // The longest kept prefix of `prompt`, shorter than it, for sequences made with `options`
  // (paged, n_ctx set), or nullopt. A hit counts as a use.
  std::optional<PrefixHit> find(std::span<const int32_t> prompt, const SequenceOptions& options);
  // A sequence for `prompt`: attached to its longest kept prefix (`*reused` = the prompt tokens it
  // holds), or new (`*reused` = 0) when there is none or attaching fails (the entry is then
  // dropped). KvBudgetError and other errors of a new sequence propagate.
  std::unique_ptr<Sequence> open_sequence(std::span<const int32_t> prompt, SequenceOptions options,
                                          int64_t* reused);
  // Where a prompt of `prompt_tokens` tokens whose first `reused` came from an entry should be
  // kept: the last max_batch boundary before its end, or 0 when that adds nothing to `reused`.
  int64_t keep_point(int64_t prompt_tokens, int64_t reused) const;
  // Persists `sequence` (its prompt open at a keep_point) as the entry of its tokens and evicts
  // the least recently used entries beyond the quota. A failure (disk full) is reported on stderr
  // and otherwise ignored: reuse never fails a request.
  void keep(const Sequence& sequence, const SequenceOptions& options);

  uint64_t bytes() const { return bytes_; }
  size_t entries() const { return entries_.size(); }

 private:
  struct Entry {
    uint64_t bytes = 0;
    uint64_t last_use = 0;  // clock_ at the last keep or hit
  };
  // The entry id of `tokens` for sequences of `options`.
  std::string entry_id(std::span<const int32_t> tokens, const std::string& settings) const;
  // The model and the persist settings of sequences made with `options` (paged, n_ctx set).
  std::string settings_key(const SequenceOptions& options) const;
  void rebuild_index();
  void forget(const std::string& id);  // deletes the entry (errors reported, not thrown)
  void evict_over_quota();

  Engine& engine_;
  const uint64_t quota_bytes_;
  const int64_t align_;  // engine's max_batch
  std::unordered_map<std::string, Entry> entries_;
  uint64_t bytes_ = 0;
  uint64_t clock_ = 0;
};

}  // namespace flashmem::server
