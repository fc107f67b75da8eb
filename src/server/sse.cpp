#include "server/sse.h"

#include "server/responses.h"

namespace flashmem::server {

// An event ends with an empty line; compact JSON holds no newline, so one data line suffices.
std::string sse_event(const nlohmann::json& data) { return "data: " + dump_json(data) + "\n\n"; }

std::string sse_done() { return "data: [DONE]\n\n"; }

}  // namespace flashmem::server
