#include "server/role.h"

#include "util/error.h"

namespace flashmem::server {

ServerRole parse_server_role(const std::string& text) {
  if (text == "both") return ServerRole::kBoth;
  if (text == "prefill") return ServerRole::kPrefill;
  if (text == "decode") return ServerRole::kDecode;
  fail("--role must be both, prefill or decode, not '{}'", text);
}

const char* to_string(ServerRole role) {
  switch (role) {
    case ServerRole::kBoth: return "both";
    case ServerRole::kPrefill: return "prefill";
    case ServerRole::kDecode: return "decode";
  }
  return "both";
}

void check_role(ServerRole role, const SequenceOptions& sequence, const StoreSpec& store,
                const std::string& prefill_url) {
  if (role != ServerRole::kDecode && !prefill_url.empty())
    fail("--prefill-url is where a decode server sends prompts: it needs --role decode");
  if (role == ServerRole::kBoth) return;
  const char* name = to_string(role);
  if (!sequence.paged)
    fail("--role {} hands sequences over through the slow tier, which only a paged KV cache uses: give a "
         "--policy (e.g. lsa or full)",
         name);
  if (store.kind == StoreSpec::Kind::kRam)
    fail("--role {} hands sequences over through the slow tier, and the ram tier lives in one process: give "
         "--kv-store redis://HOST:PORT[/PREFIX] (or disk:DIR when every server runs on this machine)",
         name);
  if (role == ServerRole::kDecode && prefill_url.empty())
    fail("--role decode forwards prompts to a prefill server: give --prefill-url http://HOST:PORT (or use "
         "--role both to prefill here)");
}

}  // namespace flashmem::server
