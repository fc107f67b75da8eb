// Requests of the OpenAI API parsed and validated into typed structs. Unknown fields are
// ignored, as OpenAI clients expect; a known field of the wrong type or range, and a field this
// server does not implement set to anything but its default (echo, logprobs, penalties, tools,
// ...: honouring it silently would return something else than asked), are a 400 ApiError
// naming the field.
#pragma once
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

#include <nlohmann/json.hpp>

#include "model/sampler.h"
#include "server/chat_prompt.h"

namespace flashmem::server {

// The fields both endpoints share.
struct GenerationParams {
  std::optional<std::string> model;   // must name the served model when given
  SamplerOptions sampling;            // server/sampling.h
  std::optional<int64_t> max_tokens;  // >= 1; none: the rest of the context
  std::vector<std::string> stop;      // at most kMaxStops non-empty strings
  bool stream = false;
  bool include_usage = false;         // stream_options.include_usage
  bool full_attention = false;        // "policy": "full" (extension): the whole KV, no selection
};

struct CompletionRequest {
  // Text, or token ids (checked against the vocabulary when the prompt is made).
  std::variant<std::string, std::vector<int32_t>> prompt;
  GenerationParams params;
};

struct ChatRequest {
  std::vector<ChatMessage> messages;  // non-empty
  GenerationParams params;
};

// OpenAI's limit on stop strings.
inline constexpr size_t kMaxStops = 4;

// The body as a JSON object; 400 on malformed JSON or another JSON type.
nlohmann::json parse_json_body(std::string_view body);

// A token-id prompt (a JSON array of non-negative 32-bit integers); 400 about "prompt" otherwise.
std::vector<int32_t> parse_token_ids(const nlohmann::json& array);

// `default_seed` seeds sampling when the request has no seed.
CompletionRequest parse_completion_request(const nlohmann::json& body, uint64_t default_seed);
ChatRequest parse_chat_request(const nlohmann::json& body, uint64_t default_seed);

}  // namespace flashmem::server
