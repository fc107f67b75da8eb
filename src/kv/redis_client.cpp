#include "kv/redis_client.h"

#include <hiredis/hiredis.h>
#include <sys/time.h>

#include <algorithm>
#include <charconv>

#include "util/error.h"

namespace flashmem {
namespace {

constexpr std::string_view kTcpScheme = "redis://";
constexpr std::string_view kUnixScheme = "unix://";
// The longest ?ttl=: Redis's EX takes up to 2^63 ms; a year is far beyond any sequence's life
// and keeps the seconds-to-milliseconds arithmetic of the server far from overflow.
constexpr int64_t kMaxTtlSeconds = int64_t{365} * 24 * 3600;

timeval to_timeval(std::chrono::milliseconds ms) {
  return {.tv_sec = static_cast<time_t>(ms.count() / 1000),
          .tv_usec = static_cast<suseconds_t>((ms.count() % 1000) * 1000)};
}

void check_prefix(const std::string& prefix, const std::string& spec) {
  if (prefix.empty()) fail("--kv-store '{}': the key prefix after the address is empty", spec);
  for (const char c : prefix)
    if (c <= ' ' || c == '{' || c == '}' || c > '~')
      fail("--kv-store '{}': the key prefix may hold printable ASCII except spaces and braces", spec);
}

[[noreturn]] void bad_address(const std::string& spec) {
  fail("--kv-store '{}' is not a Redis address: use redis://HOST:PORT[/PREFIX][?ttl=SECONDS] or "
       "unix:///PATH.sock[?prefix=PREFIX][&ttl=SECONDS]",
       spec);
}

// Applies the query `query` (after '?': NAME=VALUE pairs joined by '&') to `a`; `allow_prefix`:
// whether prefix= is a parameter (unix sockets; TCP addresses carry it in the path).
void apply_query(const std::string& query, bool allow_prefix, const std::string& spec, RedisAddress& a) {
  size_t begin = 0;
  while (begin <= query.size()) {
    const size_t end = std::min(query.find('&', begin), query.size());
    const std::string pair = query.substr(begin, end - begin);
    const size_t eq = pair.find('=');
    const std::string name = pair.substr(0, eq), value = eq == std::string::npos ? "" : pair.substr(eq + 1);
    if (name == "prefix" && allow_prefix) {
      a.prefix = value;
      check_prefix(a.prefix, spec);
    } else if (name == "ttl") {
      int64_t seconds = 0;
      const auto [last, ec] = std::from_chars(value.data(), value.data() + value.size(), seconds);
      if (ec != std::errc() || last != value.data() + value.size() || seconds < 1 || seconds > kMaxTtlSeconds)
        fail("--kv-store '{}': ttl must be a whole number of seconds in [1, {}]", spec, kMaxTtlSeconds);
      a.ttl_seconds = seconds;
    } else {
      fail("--kv-store '{}': unknown parameter '{}' (accepted: {}ttl=SECONDS)", spec, name,
           allow_prefix ? "prefix=PREFIX, " : "");
    }
    begin = end + 1;
  }
}

RedisReply convert(const redisReply* r) {
  RedisReply out;
  switch (r->type) {
    case REDIS_REPLY_STRING: out.kind = RedisReply::Kind::kString; break;
    case REDIS_REPLY_STATUS: out.kind = RedisReply::Kind::kStatus; break;
    case REDIS_REPLY_ERROR: out.kind = RedisReply::Kind::kError; break;
    case REDIS_REPLY_INTEGER: out.kind = RedisReply::Kind::kInteger; break;
    case REDIS_REPLY_ARRAY: out.kind = RedisReply::Kind::kArray; break;
    default: out.kind = RedisReply::Kind::kNil; break;
  }
  if (r->type == REDIS_REPLY_STRING || r->type == REDIS_REPLY_STATUS || r->type == REDIS_REPLY_ERROR)
    out.str.assign(r->str, r->len);
  if (r->type == REDIS_REPLY_INTEGER) out.integer = r->integer;
  if (r->type == REDIS_REPLY_ARRAY) out.integer = static_cast<int64_t>(r->elements);
  return out;
}

}  // namespace

std::string RedisAddress::describe() const {
  return unix_path.empty() ? host + ":" + std::to_string(port) : "unix:" + unix_path;
}

bool is_redis_spec(const std::string& spec) {
  return spec.starts_with(kTcpScheme) || spec.starts_with(kUnixScheme);
}

RedisAddress parse_redis_address(const std::string& spec) {
  RedisAddress a;
  if (spec.starts_with(kUnixScheme)) {
    std::string rest = spec.substr(kUnixScheme.size());
    if (const size_t q = rest.find('?'); q != std::string::npos) {
      apply_query(rest.substr(q + 1), true, spec, a);
      rest.resize(q);
    }
    if (rest.size() < 2 || rest[0] != '/') bad_address(spec);
    a.unix_path = rest;
    return a;
  }
  if (!spec.starts_with(kTcpScheme)) bad_address(spec);
  std::string rest = spec.substr(kTcpScheme.size());
  if (const size_t q = rest.find('?'); q != std::string::npos) {
    apply_query(rest.substr(q + 1), false, spec, a);
    rest.resize(q);
  }
  if (const size_t slash = rest.find('/'); slash != std::string::npos) {
    a.prefix = rest.substr(slash + 1);
    rest.resize(slash);
    check_prefix(a.prefix, spec);
  }
  const size_t colon = rest.rfind(':');
  a.host = rest.substr(0, colon);
  if (a.host.empty()) bad_address(spec);
  if (colon != std::string::npos) {
    const std::string port = rest.substr(colon + 1);
    int value = 0;
    const auto [end, ec] = std::from_chars(port.data(), port.data() + port.size(), value);
    if (ec != std::errc() || end != port.data() + port.size() || value < 1 || value > 65535)
      fail("--kv-store '{}': the port must be a number in [1, 65535]", spec);
    a.port = value;
  }
  return a;
}

RedisCommand redis_set(const RedisAddress& a, std::string_view key, std::string_view value, const std::string& ttl) {
  if (a.ttl_seconds > 0) return {"SET", key, value, "EX", ttl};
  return {"SET", key, value};
}

RedisCommand redis_get(const RedisAddress& a, std::string_view key, const std::string& ttl) {
  if (a.ttl_seconds > 0) return {"GETEX", key, "EX", ttl};
  return {"GET", key};
}

RedisConnection::RedisConnection(RedisAddress address, std::chrono::milliseconds timeout)
    : address_(std::move(address)), timeout_(timeout) {
  std::string error;
  context_ = open(&error);
  if (context_ == nullptr) fail("cannot reach the Redis KV store at {}: {}", address_.describe(), error);
  std::vector<RedisReply> replies;
  const RedisCommand ping = {"PING"};
  if (!pipeline(std::span(&ping, 1), &replies) || replies[0].kind != RedisReply::Kind::kStatus)
    fail("the KV store at {} does not answer like Redis: {}", address_.describe(),
         last_error_.empty() ? replies[0].str : last_error_);
}

RedisConnection::~RedisConnection() {
  if (context_ != nullptr) redisFree(context_);
}

redisContext* RedisConnection::open(std::string* error) const {
  const timeval tv = to_timeval(timeout_);
  redisContext* c = address_.unix_path.empty()
                        ? redisConnectWithTimeout(address_.host.c_str(), address_.port, tv)
                        : redisConnectUnixWithTimeout(address_.unix_path.c_str(), tv);
  if (c == nullptr) {
    *error = "out of memory";
    return nullptr;
  }
  // Every later read and write gets the same bound, so a server that stops answering turns into
  // an error after `timeout_`, not a hang.
  if (c->err != 0 || redisSetTimeout(c, tv) != REDIS_OK) {
    *error = c->errstr[0] != '\0' ? c->errstr : "cannot set the socket timeout";
    redisFree(c);
    return nullptr;
  }
  return c;
}

bool RedisConnection::ensure_open() {
  if (context_ != nullptr) return true;
  context_ = open(&last_error_);
  return context_ != nullptr;
}

bool RedisConnection::pipeline(std::span<const RedisCommand> commands, std::vector<RedisReply>* replies) {
  replies->clear();
  if (!ensure_open()) return false;
  std::vector<const char*> argv;
  std::vector<size_t> argv_len;
  for (const RedisCommand& command : commands) {
    argv.clear();
    argv_len.clear();
    for (std::string_view arg : command) {
      argv.push_back(arg.data());
      argv_len.push_back(arg.size());
    }
    if (redisAppendCommandArgv(context_, static_cast<int>(argv.size()), argv.data(), argv_len.data()) != REDIS_OK) {
      last_error_ = context_->errstr;
      redisFree(context_);
      context_ = nullptr;
      return false;
    }
  }
  for (size_t i = 0; i < commands.size(); ++i) {
    void* raw = nullptr;
    if (redisGetReply(context_, &raw) != REDIS_OK || raw == nullptr) {
      last_error_ = context_->errstr[0] != '\0' ? context_->errstr : "no reply";
      redisFree(context_);  // a half-read pipeline cannot be resumed
      context_ = nullptr;
      replies->clear();
      return false;
    }
    auto* reply = static_cast<redisReply*>(raw);
    replies->push_back(convert(reply));
    freeReplyObject(reply);
  }
  last_error_.clear();
  return true;
}

}  // namespace flashmem
