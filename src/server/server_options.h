// The settings of `flashmem serve` (tools/flashmem/cmd_serve.cpp maps its flags onto them).
#pragma once
#include <cstddef>
#include <cstdint>
#include <string>

#include "server/role.h"
#include "server/scheduler.h"

namespace flashmem::server {

// `flashmem serve --policy lsa` without --budget: the resident fraction of each request's pages
// (sink and tail included). lsa's own default keeps whatever passes its 0.5 threshold, which
// sizes every request's resident pool to its whole context, so a server would hold as much KV as
// full attention; 13.5% is the paper's average physical KV footprint at preserved accuracy
// (LongBench-v2, LongMemEval, RULER).
inline constexpr double kServeLsaBudget = 0.135;

struct ServerOptions {
  std::string host = "127.0.0.1";  // loopback unless asked otherwise
  int port = 8080;                 // 0: any free port (port() tells which)
  std::string api_key;             // non-empty: every route but /health needs "Bearer KEY"
  std::string model_id;            // the name /v1/models lists; a request's "model" must match it
  // Most tokens a request's prompt + max_tokens may take (a sequence's capacity); 0 = the
  // model's trained context.
  int64_t ctx = 0;
  // Largest request body: a chat of a long context is a few MB of text; more is refused (413)
  // before it is read into memory.
  size_t max_body_bytes = size_t{16} << 20;
  SchedulerOptions scheduler;
  ServerRole role = ServerRole::kBoth;  // server/role.h
  std::string prefill_url;              // --role decode: the prefill server, http://HOST:PORT
};

}  // namespace flashmem::server
