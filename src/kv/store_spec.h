// The `--kv-store` value, parsed once at the edge: which slow tier a sequence's pages go to.
//   ram                                 a mirror in this process's memory (RamStore)
//   disk:PATH                           a file per sequence in directory PATH or named PATH (DiskStore)
//   redis://HOST:PORT[/PREFIX]          a Redis server over TCP (RedisStore)
//   unix:///PATH.sock[?prefix=PREFIX]   a Redis server over a unix socket
#pragma once
#include <cstdint>
#include <memory>
#include <string>

#include "kv/kv_store.h"
#include "kv/redis_client.h"

namespace flashmem {

struct StoreSpec {
  enum class Kind : uint8_t { kRam, kDisk, kRedis };
  Kind kind = Kind::kRam;
  std::string path;    // kDisk
  RedisAddress redis;  // kRedis
};

// Throws Error naming the accepted forms when `text` is none of them.
StoreSpec parse_store_spec(const std::string& text);

// Throws Error when the tier cannot be used at all (a Redis server that does not answer), so
// that an engine fails at start rather than at its first page.
void check_store_reachable(const StoreSpec& spec);

// A new, empty store for one sequence: `segments` equal parts per page readable alone.
std::unique_ptr<KvStore> make_store(const StoreSpec& spec, size_t page_bytes, int64_t segments);

}  // namespace flashmem
