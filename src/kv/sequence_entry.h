// Persisted sequences in a slow tier: what Sequence::persist writes and SequenceOptions::attach
// opens (include/flashmem/sequence.h). An entry is a sequence's full pages under a caller's id
// plus one record (the bytes runtime/sequence_record.h encodes: geometry, tokens, open page,
// policy state, a digest per page). The record is the commit point: it is written after the
// pages and read before them, and it names the pages' generation, so rewriting an entry writes
// a new generation, switches the record atomically, then deletes the old pages.
//
//   tier          pages                                record
//   disk:DIR      DIR/ID.GEN.kvpages (a DiskStore file)  DIR/ID.kvseq (atomic rename)
//   redis://      PREFIX:{ID}:GEN:p:PAGE                 PREFIX:{ID}:meta (one SET)
//   ram           refused: nothing outlives the process's sequence
// The hash tag {ID} keeps an entry's record and pages on one Redis Cluster shard.
#pragma once
#include <cstdint>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "kv/kv_store.h"
#include "kv/store_spec.h"

namespace flashmem {

// Ids are 1-128 characters of [A-Za-z0-9._-], not starting with '.' (a file name and a Redis key
// part on every tier). Throws Error naming the id otherwise.
void check_sequence_id(const std::string& id);
// A new random generation name (16 hex digits).
std::string new_entry_generation();

// A new, empty page store for entry `id`, generation `generation`; its pages are removed with it
// unless keep_pages() is called. Throws Error for ram, for disk:PATH where PATH is not a
// directory, or when the pages exist already.
std::unique_ptr<KvStore> create_entry_pages(const StoreSpec& spec, const std::string& id,
                                            const std::string& generation, size_t page_bytes,
                                            int64_t segments);
// The kept pages of entry `id`: `digests` [n_pages] are the record's, one per page. Throws Error
// naming the entry when its pages are missing, have another geometry, or a page is absent or
// differs from its digest (disk; Redis verifies each page against its digest when it is read).
std::unique_ptr<KvStore> open_entry_pages(const StoreSpec& spec, const std::string& id,
                                          const std::string& generation, size_t page_bytes,
                                          int64_t segments, std::span<const uint64_t> digests);
// Deletes pages [0, n_pages) of a generation (best effort: absent pages are fine).
void remove_entry_pages(const StoreSpec& spec, const std::string& id, const std::string& generation,
                        int64_t n_pages);

// Replaces the record of `id` atomically (a reader sees the old record or the new one).
void write_entry_record(const StoreSpec& spec, const std::string& id, const std::string& bytes);
// The record of `id`, or nullopt when there is none. Throws Error when the tier fails.
std::optional<std::string> read_entry_record(const StoreSpec& spec, const std::string& id);
// Deletes the record (the entry is then gone even if its pages remain).
void remove_entry_record(const StoreSpec& spec, const std::string& id);
// disk: deletes the record and the pages of every generation of `id` (an entry whose record is
// damaged no longer names its generation). Other tiers: Error.
void remove_disk_entry(const StoreSpec& spec, const std::string& id);

// disk: the ids that have a record in DIR, oldest record first (by modification time), and the
// bytes an entry's files take on disk. Other tiers: Error (the server's reuse index lives on
// disk only).
std::vector<std::string> list_disk_entries(const StoreSpec& spec);
// disk: marks the entry as used now (its record's modification time), so that the order
// list_disk_entries gives after a restart is the order of last use. Best effort: a record that
// vanished or a read-only directory leaves the order as it was.
void touch_disk_entry(const StoreSpec& spec, const std::string& id);
uint64_t disk_entry_bytes(const StoreSpec& spec, const std::string& id, const std::string& generation);

}  // namespace flashmem
