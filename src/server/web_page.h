// The page `flashmem serve` shows at `/`: a chat with the served model and, beside it, the
// server's memory live (resident KV against what full attention would hold, recalls, the
// budget), read from /metrics every second. Static HTML and JavaScript compiled into the
// binary: no build step, no files to install.
#pragma once
#include <string_view>

namespace flashmem::server {

std::string_view web_page_html();

}  // namespace flashmem::server
