// A decode server's side of the hand-off (server/role.h, server/handoff.h): sends a request's
// prompt, up to its last chunk boundary, to the prefill server at --prefill-url and turns the
// answer into the job's attach fields.
//
// Threads: any HTTP thread (each call opens its own connection).
#pragma once
#include <cstdint>
#include <string>

#include "server/generation_job.h"
#include "server/handoff.h"

namespace flashmem::server {

// Longest wait for the prefill server to accept a connection: a server that is up accepts at
// once (loopback or a LAN); one that does not within 5 s is treated as down (503) rather than
// holding the request for its whole time limit.
inline constexpr double kPrefillConnectSeconds = 5;

// --prefill-url parsed once at the edge: http://HOST:PORT, with or without a trailing slash
// (the server speaks plain HTTP; put TLS in a proxy in front of it).
struct PrefillUrl {
  std::string host;
  int port = 0;
  std::string text() const;  // "http://HOST:PORT"
};
// Throws Error naming the accepted form.
PrefillUrl parse_prefill_url(const std::string& url);

class PrefillClient {
 public:
  // `model_id`: this server's Engine::model_id(); `max_batch`: its engine's (the prompt's parts);
  // `api_key`: sent as the bearer token (the servers share one --api-key).
  PrefillClient(PrefillUrl url, std::string api_key, uint64_t model_id, int64_t max_batch);

  // Hands `input`'s prompt off: the prefill server prefills its first tokens up to the last
  // multiple of max_batch before its end and `input` gets attach_id / attach_tokens (nothing
  // happens when the prompt is at most one part long). `timeout_seconds` bounds the whole call
  // (0: none). Throws ApiError: 503 "prefill_unavailable" (no connection), 504
  // "prefill_timeout", 502 "prefill_model_mismatch" (the prefill server serves another model),
  // 502 "prefill_failed" (an error answer, its message quoted, or a malformed one); a 429 of a
  // busy prefill server is passed on as this server's 429.
  void hand_off(JobInput& input, double timeout_seconds) const;

  const PrefillUrl& url() const { return url_; }

 private:
  PrefillAnswer call(const PrefillCall& call, double timeout_seconds) const;

  PrefillUrl url_;
  std::string api_key_;
  uint64_t model_id_;
  int64_t max_batch_;
};

}  // namespace flashmem::server
