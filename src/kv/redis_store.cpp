#include "kv/redis_store.h"

#include <xxhash.h>

#include <algorithm>
#include <cstdio>
#include <cstring>

#include "util/error.h"
#include "util/random_id.h"

namespace flashmem {
namespace {

constexpr char kMagic[8] = {'F', 'M', 'K', 'V', 'R', 'D', 'S', '1'};
constexpr size_t kHeaderBytes = 40;  // magic, page, page bytes, segments, checksum: 5 × 8
constexpr size_t kHashedHeaderBytes = 32;  // the header's fields before its checksum
// Pages deleted per pipeline when the store goes: large enough to amortise the round trip, small
// enough that one reply batch stays a few KiB.
constexpr size_t kDeleteBatch = 512;

uint64_t load_u64(const uint8_t* p) {
  uint64_t v;
  std::memcpy(&v, p, 8);
  return v;
}

void store_u64(uint8_t* p, uint64_t v) { std::memcpy(p, &v, 8); }

// xxh3-64 of the segment table followed by the header's fields: one value that pins the page's
// identity (index, geometry) and its content (each segment's checksum).
uint64_t table_hash(const uint8_t* header, const uint8_t* table, int64_t segments) {
  XXH3_state_t* state = XXH3_createState();
  XXH3_64bits_reset(state);
  XXH3_64bits_update(state, table, static_cast<size_t>(segments) * 8);
  XXH3_64bits_update(state, header, kHashedHeaderBytes);
  const uint64_t h = XXH3_64bits_digest(state);
  XXH3_freeState(state);
  return h;
}

}  // namespace

RedisStore::RedisStore(const RedisAddress& address, size_t page_bytes, const RedisStoreOptions& options)
    : KvStore(page_bytes, options.segments),
      address_(address),
      options_(options),
      sequence_(options.sequence.empty() ? random_hex64() : options.sequence) {
  for (const char c : sequence_)
    if (c <= ' ' || c == '{' || c == '}' || c > '~')
      fail("a Redis sequence id may hold printable ASCII except spaces and braces, not '{}'", sequence_);
  for (const char c : options.generation)
    if (c <= ' ' || c == '{' || c == '}' || c > '~')
      fail("a Redis sequence generation may hold printable ASCII except spaces and braces, not '{}'",
           options.generation);
  keep_pages_ = options.keep_pages;
  states_.assign(options.known_pages.size(), PageState::kPresent);
  table_hash_ = options.known_pages;
  // The first connection is made here so that a server that is down is a clear error at start.
  idle_.push_back(std::make_unique<RedisConnection>(address_, options_.timeout));
}

RedisStore::~RedisStore() {
  if (keep_pages_) return;
  std::vector<std::string> keys;
  {
    std::lock_guard lock(mutex_);
    for (size_t p = 0; p < states_.size(); ++p)
      if (states_[p] == PageState::kPresent) keys.push_back(key(static_cast<int64_t>(p)));
  }
  std::string error;
  std::unique_ptr<RedisConnection> connection = keys.empty() ? nullptr : acquire(&error);
  if (connection == nullptr) return;  // best effort: a server that is gone keeps nothing of ours
  std::vector<RedisReply> replies;
  for (size_t begin = 0; begin < keys.size(); begin += kDeleteBatch) {
    RedisCommand command = {"UNLINK"};
    for (size_t i = begin; i < std::min(keys.size(), begin + kDeleteBatch); ++i) command.push_back(keys[i]);
    if (!connection->pipeline(std::span(&command, 1), &replies)) return;
  }
}

std::string RedisStore::key(int64_t page) const {
  const std::string generation = options_.generation.empty() ? "" : ":" + options_.generation;
  return address_.prefix + ":{" + sequence_ + "}" + generation + ":p:" + std::to_string(page);
}

size_t RedisStore::recall_batch_pages() const {
  constexpr size_t kBatchBytes = size_t{4} << 20;  // see the header
  return std::max<size_t>(1, kBatchBytes / page_bytes_);
}

size_t RedisStore::meta_bytes() const { return kHeaderBytes + 8 * static_cast<size_t>(segments_); }

std::unique_ptr<RedisConnection> RedisStore::acquire(std::string* error) {
  {
    std::lock_guard lock(pool_mutex_);
    if (!idle_.empty()) {
      std::unique_ptr<RedisConnection> c = std::move(idle_.back());
      idle_.pop_back();
      return c;
    }
  }
  try {
    return std::make_unique<RedisConnection>(address_, options_.timeout);
  } catch (const Error& e) {
    *error = e.what();
    return nullptr;
  }
}

void RedisStore::release(std::unique_ptr<RedisConnection> connection) {
  std::lock_guard lock(pool_mutex_);
  idle_.push_back(std::move(connection));
}

uint64_t RedisStore::expected_table_hash(int64_t page) const {
  std::lock_guard lock(mutex_);
  const auto p = static_cast<size_t>(page);
  return p < states_.size() && states_[p] == PageState::kPresent ? table_hash_[p] : 0;
}

std::optional<uint64_t> RedisStore::page_digest(int64_t page) const {
  if (!has_page(page)) return std::nullopt;
  return expected_table_hash(page);
}

bool RedisStore::has_page(int64_t page) const {
  std::lock_guard lock(mutex_);
  const auto p = static_cast<size_t>(page);
  return page >= 0 && p < states_.size() && states_[p] == PageState::kPresent;
}

StoreStatus RedisStore::write_page(int64_t page, const uint8_t* bytes) {
  check_page_index(page);
  const auto p = static_cast<size_t>(page);
  {
    std::lock_guard lock(mutex_);
    if (p >= states_.size()) {
      states_.resize(p + 1, PageState::kAbsent);
      table_hash_.resize(p + 1, 0);
    }
    if (states_[p] != PageState::kAbsent) fail("KV page {} written twice", page);
    states_[p] = PageState::kWriting;
  }
  std::string value(meta_bytes() + page_bytes_, '\0');
  auto* out = reinterpret_cast<uint8_t*>(value.data());
  std::memcpy(out, kMagic, 8);
  store_u64(out + 8, static_cast<uint64_t>(page));
  store_u64(out + 16, page_bytes_);
  store_u64(out + 24, static_cast<uint64_t>(segments_));
  uint8_t* table = out + kHeaderBytes;
  for (int64_t s = 0; s < segments_; ++s)
    store_u64(table + 8 * s, XXH3_64bits(bytes + s * segment_bytes(), segment_bytes()));
  const uint64_t hash = table_hash(out, table, segments_);
  store_u64(out + kHashedHeaderBytes, hash);
  std::memcpy(out + meta_bytes(), bytes, page_bytes_);

  std::string error;
  std::unique_ptr<RedisConnection> connection = acquire(&error);
  bool ok = false;
  StoreStatus failure = StoreStatus::kIoError;
  if (connection != nullptr) {
    const std::string k = key(page);
    const std::string ttl = address_.ttl_text();
    const RedisCommand set = redis_set(address_, k, value, ttl);
    std::vector<RedisReply> replies;
    ok = connection->pipeline(std::span(&set, 1), &replies) && replies[0].kind == RedisReply::Kind::kStatus;
    // An error reply leaves the connection usable; OOM is Redis's maxmemory with noeviction.
    if (!ok && !replies.empty() && replies[0].kind == RedisReply::Kind::kError && replies[0].str.starts_with("OOM"))
      failure = StoreStatus::kNoSpace;
    release(std::move(connection));
  }
  std::lock_guard lock(mutex_);
  if (!ok) {
    states_[p] = PageState::kAbsent;
    return failure;
  }
  states_[p] = PageState::kPresent;
  table_hash_[p] = hash;
  bytes_written_.fetch_add(page_bytes_, std::memory_order_relaxed);
  return StoreStatus::kOk;
}

bool RedisStore::check_meta(int64_t page, const uint8_t* meta, const uint64_t** table) const {
  if (std::memcmp(meta, kMagic, 8) != 0 || load_u64(meta + 8) != static_cast<uint64_t>(page) ||
      load_u64(meta + 16) != page_bytes_ || load_u64(meta + 24) != static_cast<uint64_t>(segments_))
    return false;
  const uint64_t hash = load_u64(meta + kHashedHeaderBytes);
  if (hash != expected_table_hash(page) || table_hash(meta, meta + kHeaderBytes, segments_) != hash) return false;
  *table = reinterpret_cast<const uint64_t*>(meta + kHeaderBytes);
  return true;
}

StoreStatus RedisStore::verify_page(int64_t page, const std::string& value, uint8_t* dst) const {
  if (value.size() != meta_bytes() + page_bytes_) return StoreStatus::kCorrupt;
  const auto* v = reinterpret_cast<const uint8_t*>(value.data());
  const uint64_t* table = nullptr;
  if (!check_meta(page, v, &table)) return StoreStatus::kCorrupt;
  const uint8_t* bytes = v + meta_bytes();
  for (int64_t s = 0; s < segments_; ++s) {
    uint64_t expected;
    std::memcpy(&expected, table + s, 8);
    if (XXH3_64bits(bytes + s * segment_bytes(), segment_bytes()) != expected) return StoreStatus::kCorrupt;
  }
  std::memcpy(dst, bytes, page_bytes_);
  return StoreStatus::kOk;
}

StoreStatus RedisStore::read_page(int64_t page, uint8_t* dst) {
  StoreStatus status;
  read_pages(std::span(&page, 1), std::span(&dst, 1), std::span(&status, 1));
  return status;
}

void RedisStore::read_pages(std::span<const int64_t> pages, std::span<uint8_t* const> dst,
                            std::span<StoreStatus> status) {
  if (dst.size() != pages.size() || status.size() != pages.size()) fail("read_pages: spans of different sizes");
  std::vector<std::string> keys;
  std::vector<size_t> asked;  // index into pages of each key
  for (size_t i = 0; i < pages.size(); ++i) {
    check_page_index(pages[i]);
    if (expected_table_hash(pages[i]) == 0) {
      status[i] = StoreStatus::kAbsent;  // never written here: no round trip
      continue;
    }
    keys.push_back(key(pages[i]));
    asked.push_back(i);
  }
  if (keys.empty()) return;
  std::vector<RedisCommand> commands;
  const std::string ttl = address_.ttl_text();
  for (const std::string& k : keys) commands.push_back(redis_get(address_, k, ttl));
  std::string error;
  std::unique_ptr<RedisConnection> connection = acquire(&error);
  std::vector<RedisReply> replies;
  const bool ok = connection != nullptr && connection->pipeline(commands, &replies);
  if (connection != nullptr) release(std::move(connection));
  for (size_t j = 0; j < asked.size(); ++j) {
    const size_t i = asked[j];
    if (!ok) {
      status[i] = StoreStatus::kIoError;
    } else if (replies[j].kind == RedisReply::Kind::kNil) {
      status[i] = StoreStatus::kAbsent;  // evicted or deleted behind our back
    } else if (replies[j].kind != RedisReply::Kind::kString) {
      status[i] = StoreStatus::kIoError;
    } else {
      status[i] = verify_page(pages[i], replies[j].str, dst[i]);
      if (status[i] == StoreStatus::kOk) bytes_read_.fetch_add(page_bytes_, std::memory_order_relaxed);
    }
  }
}

StoreStatus RedisStore::read_segment(int64_t page, int64_t segment, uint8_t* dst) {
  check_page_index(page);
  check_segment_index(segment);
  if (expected_table_hash(page) == 0) return StoreStatus::kAbsent;
  const std::string k = key(page);
  const std::string meta_end = std::to_string(meta_bytes() - 1);
  const size_t begin = meta_bytes() + static_cast<size_t>(segment) * segment_bytes();
  const std::string first = std::to_string(begin);
  const std::string last = std::to_string(begin + segment_bytes() - 1);
  const std::string ttl = address_.ttl_text();
  std::vector<RedisCommand> commands = {{"GETRANGE", k, "0", meta_end}, {"GETRANGE", k, first, last}};
  if (address_.ttl_seconds > 0) commands.push_back({"EXPIRE", k, ttl});  // a read refreshes the page's life
  std::string error;
  std::unique_ptr<RedisConnection> connection = acquire(&error);
  if (connection == nullptr) return StoreStatus::kIoError;
  std::vector<RedisReply> replies;
  const bool ok = connection->pipeline(commands, &replies);
  release(std::move(connection));
  if (!ok || replies[0].kind != RedisReply::Kind::kString || replies[1].kind != RedisReply::Kind::kString)
    return StoreStatus::kIoError;
  // GETRANGE of a missing key is an empty string, as is a range beyond a truncated value.
  if (replies[0].str.empty()) return StoreStatus::kAbsent;
  if (replies[0].str.size() != meta_bytes() || replies[1].str.size() != segment_bytes()) return StoreStatus::kCorrupt;
  const uint64_t* table = nullptr;
  if (!check_meta(page, reinterpret_cast<const uint8_t*>(replies[0].str.data()), &table)) return StoreStatus::kCorrupt;
  uint64_t expected;
  std::memcpy(&expected, table + segment, 8);
  if (XXH3_64bits(replies[1].str.data(), segment_bytes()) != expected) return StoreStatus::kCorrupt;
  std::memcpy(dst, replies[1].str.data(), segment_bytes());
  bytes_read_.fetch_add(segment_bytes(), std::memory_order_relaxed);
  return StoreStatus::kOk;
}

}  // namespace flashmem
