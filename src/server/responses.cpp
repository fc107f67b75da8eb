#include "server/responses.h"

namespace flashmem::server {

namespace {

using nlohmann::json;

const char* object_name(Endpoint endpoint, bool chunk) {
  if (endpoint == Endpoint::kCompletions) return "text_completion";
  return chunk ? "chat.completion.chunk" : "chat.completion";
}

json head(Endpoint endpoint, const ResponseHeader& header, bool chunk) {
  return {{"id", header.id},
          {"object", object_name(endpoint, chunk)},
          {"created", header.created},
          {"model", header.model}};
}

json reason_json(std::optional<FinishReason> reason) {
  return reason ? json(to_string(*reason)) : json();
}

}  // namespace

json usage_json(const JobUsage& usage) {
  json out = {{"prompt_tokens", usage.prompt_tokens},
              {"completion_tokens", usage.completion_tokens},
              {"total_tokens", usage.prompt_tokens + usage.completion_tokens},
              {"prompt_tokens_details", {{"cached_tokens", usage.cached_tokens}}}};
  if (usage.handoff.prefilled_tokens > 0) out["handoff"] = handoff_json(usage.handoff);
  return out;
}

json handoff_json(const JobHandoff& handoff) {
  return {{"prefilled_tokens", handoff.prefilled_tokens},
          {"prefill_seconds", handoff.prefill_seconds},
          {"handoff_seconds", handoff.handoff_seconds}};
}

json kv_memory_json(const JobMemory& memory) {
  return {{"policy", memory.policy},
          {"kv_reserved_bytes", memory.kv_reserved_bytes},
          {"kv_resident_bytes", memory.kv_resident_bytes},
          {"kv_history_bytes", memory.kv_history_bytes},
          {"pages_recalled", memory.pages_recalled},
          {"recall_bytes", memory.recall_bytes}};
}

json completion_object(Endpoint endpoint, const ResponseHeader& header, const std::string& text,
                       FinishReason reason, const JobUsage& usage) {
  json out = head(endpoint, header, false);
  json choice = {{"index", 0}, {"logprobs", nullptr}, {"finish_reason", to_string(reason)}};
  if (endpoint == Endpoint::kCompletions) {
    choice["text"] = text;
  } else {
    choice["message"] = {{"role", "assistant"}, {"content", text}};
  }
  out["choices"] = json::array({choice});
  out["usage"] = usage_json(usage);
  out["kv_memory"] = kv_memory_json(usage.memory);
  return out;
}

json stream_chunk(Endpoint endpoint, const ResponseHeader& header, const std::string& text,
                  std::optional<FinishReason> reason, bool include_usage, bool first) {
  json out = head(endpoint, header, true);
  json choice = {{"index", 0}, {"logprobs", nullptr}, {"finish_reason", reason_json(reason)}};
  if (endpoint == Endpoint::kCompletions) {
    choice["text"] = text;
  } else {
    json delta = json::object();
    if (first) delta["role"] = "assistant";
    if (!text.empty() || !reason) delta["content"] = text;
    choice["delta"] = delta;
  }
  out["choices"] = json::array({choice});
  if (include_usage) out["usage"] = nullptr;
  return out;
}

json usage_chunk(Endpoint endpoint, const ResponseHeader& header, const JobUsage& usage) {
  json out = head(endpoint, header, true);
  out["choices"] = json::array();
  out["usage"] = usage_json(usage);
  return out;
}

json models_list(const std::string& model, int64_t created, const std::string& chat_prompt) {
  const json entry = {{"id", model},
                      {"object", "model"},
                      {"created", created},
                      {"owned_by", "flashmem"},
                      {"chat_prompt", chat_prompt}};
  return {{"object", "list"}, {"data", json::array({entry})}};
}

std::string dump_json(const json& value) {
  return value.dump(-1, ' ', false, json::error_handler_t::replace);
}

}  // namespace flashmem::server
