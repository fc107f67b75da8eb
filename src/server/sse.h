// Server-sent events as OpenAI streams them: one "data: <json>" event per chunk, and
// "data: [DONE]" at the end.
#pragma once
#include <string>

#include <nlohmann/json.hpp>

namespace flashmem::server {

inline constexpr const char* kEventStreamType = "text/event-stream";

std::string sse_event(const nlohmann::json& data);
std::string sse_done();

}  // namespace flashmem::server
