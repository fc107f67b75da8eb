#include "kv/store_spec.h"

#include <chrono>

#include "kv/disk_store.h"
#include "kv/redis_store.h"
#include "util/error.h"

namespace flashmem {

StoreSpec parse_store_spec(const std::string& text) {
  StoreSpec spec;
  if (text == "ram") return spec;
  if (text.starts_with("disk:") && text.size() > 5) {
    spec.kind = StoreSpec::Kind::kDisk;
    spec.path = text.substr(5);
    return spec;
  }
  if (is_redis_spec(text)) {
    spec.kind = StoreSpec::Kind::kRedis;
    spec.redis = parse_redis_address(text);
    return spec;
  }
  fail("--kv-store must be 'ram', 'disk:PATH', 'redis://HOST:PORT[/PREFIX]' or "
       "'unix:///PATH.sock[?prefix=PREFIX]', not '{}'",
       text);
}

void check_store_reachable(const StoreSpec& spec) {
  if (spec.kind != StoreSpec::Kind::kRedis) return;
  RedisConnection probe(spec.redis, RedisStoreOptions{}.timeout);  // throws with the address
}

std::unique_ptr<KvStore> make_store(const StoreSpec& spec, size_t page_bytes, int64_t segments) {
  switch (spec.kind) {
    case StoreSpec::Kind::kRam: return std::make_unique<RamStore>(page_bytes, segments);
    // One file per sequence: a directory gets a new, unpredictable file name inside it each
    // time; a file name must not exist yet (DiskStore::create).
    case StoreSpec::Kind::kDisk: return DiskStore::create(spec.path, page_bytes, {.segments = segments});
    case StoreSpec::Kind::kRedis:
      return std::make_unique<RedisStore>(spec.redis, page_bytes, RedisStoreOptions{.segments = segments});
  }
  fail("unknown KV store kind");
}

}  // namespace flashmem
