#include "kv/sequence_entry.h"

#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <algorithm>
#include <cstring>
#include <filesystem>

#include "kv/disk_store.h"
#include "kv/redis_store.h"
#include "util/atomic_file.h"
#include "util/error.h"
#include "util/random_id.h"
#include "util/read_file.h"

namespace flashmem {
namespace {

constexpr size_t kMaxIdChars = 128;  // a file name part well below NAME_MAX (255) with suffixes
constexpr const char* kRecordSuffix = ".kvseq";
constexpr const char* kPagesSuffix = ".kvpages";

// The directory of a disk tier; Error for any other tier or a spec that names a file.
const std::string& entry_dir(const StoreSpec& spec) {
  if (spec.kind == StoreSpec::Kind::kRam)
    fail("the ram KV tier keeps nothing after its sequence: persisted sequences need "
         "--kv-store disk:DIR or redis://");
  std::error_code ec;
  if (!std::filesystem::is_directory(spec.path, ec))
    fail("persisted sequences need --kv-store disk:DIR with an existing directory; '{}' is not one",
         spec.path);
  return spec.path;
}

std::string pages_path(const StoreSpec& spec, const std::string& id, const std::string& generation) {
  return entry_dir(spec) + "/" + id + "." + generation + kPagesSuffix;
}

std::string record_path(const StoreSpec& spec, const std::string& id) {
  return entry_dir(spec) + "/" + id + kRecordSuffix;
}

std::string record_key(const StoreSpec& spec, const std::string& id) {
  return spec.redis.prefix + ":{" + id + "}:meta";
}

// One command on a new connection; Error naming the address when the server fails.
RedisReply redis_call(const StoreSpec& spec, const RedisCommand& command) {
  RedisConnection connection(spec.redis, RedisStoreOptions{}.timeout);
  std::vector<RedisReply> replies;
  if (!connection.pipeline(std::span(&command, 1), &replies))
    fail("the Redis KV store at {} failed: {}", spec.redis.describe(), connection.last_error());
  if (replies.front().kind == RedisReply::Kind::kError)
    fail("the Redis KV store at {} refused {}: {}", spec.redis.describe(), command.front(),
         replies.front().str);
  return replies.front();
}

}  // namespace

void check_sequence_id(const std::string& id) {
  bool ok = !id.empty() && id.size() <= kMaxIdChars && id.front() != '.';
  for (const char c : id)
    ok = ok && ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                c == '.' || c == '_' || c == '-');
  if (!ok)
    fail("a sequence id is 1-{} characters of A-Z a-z 0-9 . _ - not starting with '.', not '{}'",
         kMaxIdChars, id);
}

std::string new_entry_generation() { return random_hex64(); }

std::unique_ptr<KvStore> create_entry_pages(const StoreSpec& spec, const std::string& id,
                                            const std::string& generation, size_t page_bytes,
                                            int64_t segments) {
  check_sequence_id(id);
  if (spec.kind == StoreSpec::Kind::kRedis)
    return std::make_unique<RedisStore>(
        spec.redis, page_bytes,
        RedisStoreOptions{.segments = segments, .sequence = id, .generation = generation});
  return DiskStore::create(pages_path(spec, id, generation), page_bytes, {.segments = segments});
}

std::unique_ptr<KvStore> open_entry_pages(const StoreSpec& spec, const std::string& id,
                                          const std::string& generation, size_t page_bytes,
                                          int64_t segments, std::span<const uint64_t> digests) {
  check_sequence_id(id);
  if (spec.kind == StoreSpec::Kind::kRedis)
    return std::make_unique<RedisStore>(
        spec.redis, page_bytes,
        RedisStoreOptions{.segments = segments, .keep_pages = true, .sequence = id,
                          .generation = generation,
                          .known_pages = std::vector<uint64_t>(digests.begin(), digests.end())});
  const std::string path = pages_path(spec, id, generation);
  if (::access(path.c_str(), F_OK) != 0)
    fail("the pages of persisted sequence '{}' are missing ({})", id, path);
  std::unique_ptr<DiskStore> store = DiskStore::open(path, page_bytes, {.segments = segments});
  for (size_t p = 0; p < digests.size(); ++p) {
    const std::optional<uint64_t> digest = store->page_digest(static_cast<int64_t>(p));
    if (!digest) fail("persisted sequence '{}': KV page {} is missing from {}", id, p, path);
    if (*digest != digests[p])
      fail("persisted sequence '{}': KV page {} in {} is not the page its record names", id, p, path);
  }
  return store;
}

void remove_entry_pages(const StoreSpec& spec, const std::string& id, const std::string& generation,
                        int64_t n_pages) {
  if (spec.kind != StoreSpec::Kind::kRedis) {
    std::remove(pages_path(spec, id, generation).c_str());
    return;
  }
  // A store that forgets nothing it was told about deletes exactly these keys when it goes.
  RedisStore pages(spec.redis, 1,
                   RedisStoreOptions{.sequence = id, .generation = generation,
                                     .known_pages = std::vector<uint64_t>(static_cast<size_t>(n_pages), 0)});
}

void write_entry_record(const StoreSpec& spec, const std::string& id, const std::string& bytes) {
  check_sequence_id(id);
  if (spec.kind == StoreSpec::Kind::kRedis) {
    const std::string key = record_key(spec, id);
    const std::string ttl = spec.redis.ttl_text();
    redis_call(spec, redis_set(spec.redis, key, bytes, ttl));
    return;
  }
  write_file_atomic(record_path(spec, id), bytes);
}

std::optional<std::string> read_entry_record(const StoreSpec& spec, const std::string& id) {
  check_sequence_id(id);
  if (spec.kind == StoreSpec::Kind::kRedis) {
    const std::string key = record_key(spec, id);
    const std::string ttl = spec.redis.ttl_text();
    RedisReply reply = redis_call(spec, redis_get(spec.redis, key, ttl));
    if (reply.kind == RedisReply::Kind::kNil) return std::nullopt;
    return std::move(reply.str);
  }
  const std::string path = record_path(spec, id);
  if (::access(path.c_str(), F_OK) != 0) return std::nullopt;
  return read_file(path, "sequence record");
}

void remove_entry_record(const StoreSpec& spec, const std::string& id) {
  check_sequence_id(id);
  if (spec.kind == StoreSpec::Kind::kRedis) {
    const std::string key = record_key(spec, id);
    redis_call(spec, {"UNLINK", key});
    return;
  }
  const std::string path = record_path(spec, id);
  if (std::remove(path.c_str()) != 0 && errno != ENOENT)
    fail("cannot remove the sequence record '{}': {}", path, std::strerror(errno));
}

void remove_disk_entry(const StoreSpec& spec, const std::string& id) {
  if (spec.kind != StoreSpec::Kind::kDisk) fail("only a disk KV tier removes entries by file name");
  check_sequence_id(id);
  remove_entry_record(spec, id);
  std::error_code ec;
  for (const auto& e : std::filesystem::directory_iterator(entry_dir(spec), ec)) {
    const std::string name = e.path().filename().string();
    // ID.GEN.kvpages: a generation is 16 hex digits, so "ID." cannot be the start of another
    // id's pages unless that id is ID.GEN itself, which the length check excludes.
    if (name.starts_with(id + ".") && name.ends_with(kPagesSuffix) &&
        name.size() == id.size() + 1 + 16 + std::strlen(kPagesSuffix))
      std::filesystem::remove(e.path(), ec);
  }
}

std::vector<std::string> list_disk_entries(const StoreSpec& spec) {
  if (spec.kind != StoreSpec::Kind::kDisk) fail("only a disk KV tier lists its persisted sequences");
  std::vector<std::pair<std::filesystem::file_time_type, std::string>> found;
  std::error_code ec;
  for (const auto& e : std::filesystem::directory_iterator(entry_dir(spec), ec)) {
    const std::string name = e.path().filename().string();
    if (!name.ends_with(kRecordSuffix)) continue;
    const std::string id = name.substr(0, name.size() - std::strlen(kRecordSuffix));
    std::error_code time_ec;
    const auto time = std::filesystem::last_write_time(e.path(), time_ec);
    if (!id.empty() && id.front() != '.' && !time_ec) found.emplace_back(time, id);
  }
  std::sort(found.begin(), found.end());
  std::vector<std::string> ids;
  for (auto& [time, id] : found) ids.push_back(std::move(id));
  return ids;
}

void touch_disk_entry(const StoreSpec& spec, const std::string& id) {
  if (spec.kind != StoreSpec::Kind::kDisk) fail("only a disk KV tier orders its entries by file time");
  check_sequence_id(id);
  std::error_code ec;  // best effort, as documented
  std::filesystem::last_write_time(record_path(spec, id), std::filesystem::file_time_type::clock::now(), ec);
}

uint64_t disk_entry_bytes(const StoreSpec& spec, const std::string& id, const std::string& generation) {
  uint64_t bytes = 0;
  for (const std::string& path : {record_path(spec, id), pages_path(spec, id, generation)}) {
    struct stat st{};
    if (::stat(path.c_str(), &st) == 0) bytes += static_cast<uint64_t>(st.st_blocks) * 512;
  }
  return bytes;
}

}  // namespace flashmem
