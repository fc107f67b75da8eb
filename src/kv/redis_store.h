// RedisStore: the slow KV tier in a Redis server (`--kv-store redis://HOST:PORT[/PREFIX]` or
// `unix:///PATH.sock[?prefix=PREFIX]`), so that a sequence's history is bounded by the server's
// memory rather than this machine's, and can be shared by several processes.
//
// One value per page, key `PREFIX:{SEQUENCE}:p:PAGE` (the braces are a Redis Cluster hash tag:
// every page of a sequence lives on one shard, so a recall batch is one pipeline to one server).
// Value layout (little-endian):
//   [0, 40)            header: magic "FMKVRDS1", page index, page bytes, segments, xxh3-64 of
//                      the segment table followed by the header's first 32 bytes
//   [40, 40 + 8·S)     segment table: xxh3-64 of each of the S equal segments of the page
//   [40 + 8·S, ...)    the page bytes
// Every read verifies what it returns: the header against the key's page and this store's
// geometry, the table against the checksum this store computed when it wrote the page, and the
// bytes against the table — so a value that was evicted (maxmemory), truncated, overwritten or
// flipped is a miss (absent / corrupt), never data. A connection failure or a timeout is
// kIoError; the store never throws on a server fault after it was created.
#pragma once
#include <atomic>
#include <chrono>
#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "kv/kv_store.h"
#include "kv/redis_client.h"

namespace flashmem {

struct RedisStoreOptions {
  int64_t segments = 1;  // equal segments per page (KvStore "Segments"); must divide page_bytes
  // Every connect and call gives up after this long: loopback answers in well under a
  // millisecond, a remote server in a few; 2 s leaves room for a loaded server without letting a
  // dead one stall decoding for long.
  std::chrono::milliseconds timeout{2000};
  bool keep_pages = false;  // false: the destructor deletes the sequence's pages from the server
  std::string sequence = {};  // key part naming the sequence; empty: a new random id
  // Non-empty: a further key part inside the hash tag's sequence (PREFIX:{SEQUENCE}:GEN:p:PAGE),
  // so that a persisted sequence can be rewritten beside its old pages and switched atomically.
  std::string generation = {};
  // A kept sequence reopened: pages [0, n) are taken as present, each verified against its
  // digest here (page_digest() of the store that wrote it) instead of one computed at write time.
  std::vector<uint64_t> known_pages = {};
};

class RedisStore final : public KvStore {
 public:
  // Connects (throws Error naming the address when the server cannot be reached).
  RedisStore(const RedisAddress& address, size_t page_bytes, const RedisStoreOptions& options = {});
  ~RedisStore() override;

  StoreStatus write_page(int64_t page, const uint8_t* bytes) override;
  StoreStatus read_page(int64_t page, uint8_t* dst) override;
  StoreStatus read_segment(int64_t page, int64_t segment, uint8_t* dst) override;
  void read_pages(std::span<const int64_t> pages, std::span<uint8_t* const> dst,
                  std::span<StoreStatus> status) override;
  bool has_page(int64_t page) const override;
  std::optional<uint64_t> page_digest(int64_t page) const override;  // the table + header hash
  void keep_pages() override { keep_pages_ = true; }
  // Pages of up to 4 MiB per pipeline: a loopback round trip (~50 µs) is then a few percent of
  // the transfer, while the first page of a batch waits at most a few milliseconds for the rest.
  size_t recall_batch_pages() const override;

  const std::string& sequence() const { return sequence_; }
  std::string key(int64_t page) const;  // PREFIX:{SEQUENCE}[:GEN]:p:PAGE
  size_t meta_bytes() const;            // header + segment table in front of the page bytes

 private:
  // A connection from the pool (a new one when all are busy); nullptr when the server cannot be
  // reached, with the reason in `error`.
  std::unique_ptr<RedisConnection> acquire(std::string* error);
  void release(std::unique_ptr<RedisConnection> connection);
  // Checks a value's metadata [meta_bytes()] for `page`; the segment table on success.
  bool check_meta(int64_t page, const uint8_t* meta, const uint64_t** table) const;
  StoreStatus verify_page(int64_t page, const std::string& value, uint8_t* dst) const;
  uint64_t expected_table_hash(int64_t page) const;  // 0 when the page was not written here

  RedisAddress address_;
  RedisStoreOptions options_;
  std::string sequence_;
  std::atomic<bool> keep_pages_{false};  // options.keep_pages or keep_pages()

  std::mutex pool_mutex_;
  std::vector<std::unique_ptr<RedisConnection>> idle_;  // connections not in use

  mutable std::mutex mutex_;          // guards the two tables below
  std::vector<PageState> states_;     // [n_pages]
  std::vector<uint64_t> table_hash_;  // [n_pages] checksum of each written page's table + header
};

}  // namespace flashmem
