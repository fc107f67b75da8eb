// A blocking connection to a Redis server (hiredis) for the Redis slow tier (kv/redis_store.h):
// TCP or a unix socket, a timeout on the connect and on every call, pipelined commands.
//
// Errors: an address that cannot be parsed or a server that cannot be reached at connect time
// throws flashmem::Error naming the address; a failure after that (timeout, connection reset,
// server gone) is a false return from pipeline() and leaves the connection closed, so that the
// store can report an I/O status instead of throwing in the middle of decoding.
#pragma once
#include <chrono>
#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <vector>

struct redisContext;

namespace flashmem {

// Where the store lives: `redis://HOST:PORT[/PREFIX][?ttl=SECONDS]` or
// `unix:///PATH.sock[?prefix=PREFIX][&ttl=SECONDS]` (query parameters in any order).
struct RedisAddress {
  std::string host;       // empty for a unix socket
  int port = 6379;        // Redis's registered port
  std::string unix_path;  // empty for TCP
  std::string prefix = "flashmem";  // first part of every key
  // > 0: every key written (pages, sequence records) expires this many seconds after it was last
  // written or read, so the pages of a process that died without deleting them go away by
  // themselves; 0: keys stay until deleted.
  int64_t ttl_seconds = 0;
  std::string describe() const;     // "127.0.0.1:6379" or "unix:/run/redis.sock"
  std::string ttl_text() const { return std::to_string(ttl_seconds); }  // for the commands below
};

// True when `spec` names a Redis store (starts with redis:// or unix://).
bool is_redis_spec(const std::string& spec);
// Throws Error with the expected forms when `spec` is not a valid Redis address.
RedisAddress parse_redis_address(const std::string& spec);

// One reply of a pipelined command.
struct RedisReply {
  enum class Kind : uint8_t { kString, kNil, kStatus, kInteger, kError, kArray };
  Kind kind = Kind::kNil;
  std::string str;      // kString, kStatus, kError
  int64_t integer = 0;  // kInteger (kArray: element count)
};

// Arguments of one command, binary-safe ("SET", key, value).
using RedisCommand = std::vector<std::string_view>;

// The commands that write and read one key under `a`'s ttl: SET key value [EX ttl], and GET key
// or, with a ttl, GETEX key EX ttl (a read refreshes the key's life). `ttl` is a.ttl_text(),
// kept alive by the caller as long as the command.
RedisCommand redis_set(const RedisAddress& a, std::string_view key, std::string_view value, const std::string& ttl);
RedisCommand redis_get(const RedisAddress& a, std::string_view key, const std::string& ttl);

class RedisConnection {
 public:
  // Connects and sends PING. Throws Error (naming the address and hiredis's message) when the
  // server cannot be reached within `timeout` or does not answer like Redis.
  RedisConnection(RedisAddress address, std::chrono::milliseconds timeout);
  ~RedisConnection();
  RedisConnection(const RedisConnection&) = delete;
  RedisConnection& operator=(const RedisConnection&) = delete;

  // Sends every command in one write and reads the replies in order into `replies` (one per
  // command). false when the connection failed (timeout, reset, server gone): the connection is
  // then closed and the next call reconnects once (within the timeout) before giving up.
  bool pipeline(std::span<const RedisCommand> commands, std::vector<RedisReply>* replies);
  // The last failure, for error messages ("Connection refused", "Resource temporarily unavailable").
  const std::string& last_error() const { return last_error_; }
  const RedisAddress& address() const { return address_; }

 private:
  redisContext* open(std::string* error) const;  // nullptr + error on failure
  bool ensure_open();

  RedisAddress address_;
  std::chrono::milliseconds timeout_;
  redisContext* context_ = nullptr;
  std::string last_error_;
};

}  // namespace flashmem
