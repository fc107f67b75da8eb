#include "server/handoff.h"

#include <fmt/format.h>

#include <charconv>

#include "server/api_error.h"
#include "server/json_fields.h"
#include "server/request.h"

namespace flashmem::server {
namespace {

using nlohmann::json;

uint64_t parse_model_id(const json& body, const char* field) {
  const std::optional<std::string> text = string_field(body, field);
  uint64_t id = 0;
  if (!text) fail_request(field, "'{}' is required", field);
  const auto [end, ec] = std::from_chars(text->data(), text->data() + text->size(), id, 16);
  if (text->size() != 16 || ec != std::errc() || end != text->data() + text->size())
    fail_request(field, "'{}' must be 16 hex digits, got '{}'", field, *text);
  return id;
}

}  // namespace

std::string model_id_text(uint64_t id) { return fmt::format("{:016x}", id); }

json to_json(const PrefillCall& call) {
  json body = {{"model_id", model_id_text(call.model_id)}, {"prompt", call.prompt}, {"n_ctx", call.n_ctx}};
  if (call.full_attention) body["policy"] = "full";
  return body;
}

json to_json(const PrefillAnswer& answer) {
  return {{"sequence", answer.sequence},
          {"n_tokens", answer.n_tokens},
          {"model_id", model_id_text(answer.model_id)},
          {"prefill_seconds", answer.prefill_seconds}};
}

PrefillCall parse_prefill_call(const json& body) {
  PrefillCall call;
  call.model_id = parse_model_id(body, "model_id");
  const json* prompt = find_field(body, "prompt");
  if (prompt == nullptr || !prompt->is_array() || prompt->empty())
    fail_request("prompt", "'prompt' must be a non-empty array of token ids");
  call.prompt = parse_token_ids(*prompt);
  call.n_ctx = integer_field(body, "n_ctx").value_or(0);
  if (call.n_ctx <= static_cast<int64_t>(call.prompt.size()))
    fail_request("n_ctx", "'n_ctx' ({}) must exceed the prompt's {} tokens", call.n_ctx, call.prompt.size());
  if (const auto policy = string_field(body, "policy")) {
    if (*policy != "full") fail_request("policy", "'policy' may only be \"full\", got '{}'", *policy);
    call.full_attention = true;
  }
  return call;
}

PrefillAnswer parse_prefill_answer(const json& body) {
  PrefillAnswer answer;
  answer.sequence = string_field(body, "sequence").value_or("");
  if (answer.sequence.empty()) fail_request("sequence", "'sequence' is required");
  answer.n_tokens = integer_field(body, "n_tokens").value_or(0);
  if (answer.n_tokens < 1) fail_request("n_tokens", "'n_tokens' must be >= 1");
  answer.model_id = parse_model_id(body, "model_id");
  answer.prefill_seconds = number_field(body, "prefill_seconds").value_or(0);
  return answer;
}

}  // namespace flashmem::server
