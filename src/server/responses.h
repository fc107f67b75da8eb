// The OpenAI response objects: completions ("text_completion") and chat completions
// ("chat.completion"), their streamed chunks ("chat.completion.chunk" / "text_completion"), usage
// and the model list.
#pragma once
#include <cstdint>
#include <optional>
#include <string>

#include <nlohmann/json.hpp>

#include "server/generation_job.h"

namespace flashmem::server {

enum class Endpoint { kCompletions, kChat };

// What every object of one response repeats.
struct ResponseHeader {
  std::string id;       // "cmpl-..." / "chatcmpl-..."
  int64_t created = 0;  // Unix seconds
  std::string model;
};

// With the "handoff" extension field (handoff_json) when a prefill server prefilled the prompt.
nlohmann::json usage_json(const JobUsage& usage);
// --role decode: how much of the prompt the prefill server prefilled, its time, and the hand-off
// time (its answer -> this server's first token).
nlohmann::json handoff_json(const JobHandoff& handoff);
// The "kv_memory" extension field of a finished answer (the non-streamed object, a stream's
// finish chunk): the request's KV figures (JobMemory).
nlohmann::json kv_memory_json(const JobMemory& memory);

// The whole answer of a non-streamed request.
nlohmann::json completion_object(Endpoint endpoint, const ResponseHeader& header, const std::string& text,
                                 FinishReason reason, const JobUsage& usage);

// A streamed chunk: `text` as the delta; `reason` on the last; "usage": null when the stream
// ends with a usage chunk (stream_options.include_usage). Chat: `first` adds role "assistant".
nlohmann::json stream_chunk(Endpoint endpoint, const ResponseHeader& header, const std::string& text,
                            std::optional<FinishReason> reason, bool include_usage, bool first);
// The final chunk of include_usage: no choices, the usage.
nlohmann::json usage_chunk(Endpoint endpoint, const ResponseHeader& header, const JobUsage& usage);

// GET /v1/models: the served model; `chat_prompt` says how chat prompts are made.
nlohmann::json models_list(const std::string& model, int64_t created, const std::string& chat_prompt);

// Compact JSON text; invalid UTF-8 in generated text (a byte token cut at max_tokens) becomes
// U+FFFD instead of an exception.
std::string dump_json(const nlohmann::json& value);

}  // namespace flashmem::server
