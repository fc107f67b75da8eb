// `flashmem serve --role prefill|decode|both`: prefill/decode disaggregation (docs/SERVING.md,
// "Prefill and decode servers").
//
//   both     (default) a server prefills and decodes its own requests.
//   prefill  answers POST /internal/prefill from decode servers: prefills the prompt it is given,
//            persists the sequence in the shared slow tier under a new id (Sequence::persist)
//            and answers with the id; it generates nothing (the /v1 generation routes refuse).
//   decode   needs --prefill-url: forwards each request's prompt, up to its last chunk boundary,
//            to that prefill server, attaches the persisted sequence (SequenceOptions::attach),
//            deletes the entry, prefills the prompt's last part itself and generates. A prompt of
//            at most one chunk (the engine's max_batch) has nothing to hand off and is prefilled
//            here.
// Both split roles need a paged sequence (--policy) and a slow tier another process can open:
// redis:// or unix:// (across machines), or disk:DIR on one machine.
#pragma once
#include <cstdint>
#include <string>

#include "flashmem/sequence.h"
#include "kv/store_spec.h"

namespace flashmem::server {

enum class ServerRole { kBoth, kPrefill, kDecode };

// "both" | "prefill" | "decode"; Error naming the accepted values otherwise.
ServerRole parse_server_role(const std::string& text);
const char* to_string(ServerRole role);

// Throws Error, saying why, when `role` cannot run with these settings: a split role with the
// contiguous cache (no `paged`), with the ram tier (nothing another process can open), or a
// decode server without a prefill URL; a prefill URL on another role.
void check_role(ServerRole role, const SequenceOptions& sequence, const StoreSpec& store,
                const std::string& prefill_url);

}  // namespace flashmem::server
