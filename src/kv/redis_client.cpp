#include "kv/redis_client.h"

#include <hiredis/hiredis.h>
#include <sys/time.h>

#include <charconv>

#include "util/error.h"

namespace flashmem {
namespace {

constexpr std::string_view kTcpScheme = "redis://";
constexpr std::string_view kUnixScheme = "unix://";
constexpr std::string_view kPrefixQuery = "?prefix=";

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
  fail("--kv-store '{}' is not a Redis address: use redis://HOST:PORT[/PREFIX] or "
       "unix:///PATH.sock[?prefix=PREFIX]",
       spec);
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
    if (const size_t q = rest.find(kPrefixQuery); q != std::string::npos) {
      a.prefix = rest.substr(q + kPrefixQuery.size());
      rest.resize(q);
      check_prefix(a.prefix, spec);
    }
    if (rest.size() < 2 || rest[0] != '/') bad_address(spec);
    a.unix_path = rest;
    return a;
  }
  if (!spec.starts_with(kTcpScheme)) bad_address(spec);
  std::string rest = spec.substr(kTcpScheme.size());
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
