#include "server/request.h"

#include <algorithm>
#include <array>
#include <limits>

#include "server/api_error.h"
#include "server/json_fields.h"
#include "server/sampling.h"

namespace flashmem::server {

namespace {

using nlohmann::json;

// A value a client may send for a field this server does not implement: the field's "off".
bool is_default_value(const json& value) {
  if (value.is_null()) return true;
  if (value.is_boolean()) return !value.get<bool>();
  if (value.is_number()) return value.get<double>() == 0;
  if (value.is_string()) return value.get<std::string>().empty();
  return value.empty();  // arrays and objects
}

void reject_unsupported(const json& body) {
  static constexpr std::array kOffByDefault = {"echo", "logprobs", "top_logprobs", "suffix",
                                               "presence_penalty", "frequency_penalty",
                                               "logit_bias", "tools", "functions"};
  for (const char* name : kOffByDefault)
    if (const auto it = body.find(name); it != body.end() && !is_default_value(*it))
      fail_request(name, "'{}' is not supported by this server", name);
  if (const auto b = integer_field(body, "best_of"); b && *b != 1)
    fail_request("best_of", "'best_of' must be 1 (one completion per request), got {}", *b);
  if (const json* f = find_field(body, "response_format")) {
    const json* type = f->is_object() ? find_field(*f, "type") : nullptr;
    if (type == nullptr || *type != "text")
      fail_request("response_format", "only the 'text' response format is supported");
  }
}

std::vector<std::string> parse_stop(const json& body) {
  const json* f = find_field(body, "stop");
  if (f == nullptr) return {};
  std::vector<std::string> stop;
  if (f->is_string()) {
    stop.push_back(f->get<std::string>());
  } else if (f->is_array()) {
    if (f->size() > kMaxStops) fail_request("stop", "'stop' holds at most {} strings", kMaxStops);
    for (const json& s : *f) {
      if (!s.is_string()) fail_request("stop", "'stop' must be a string or an array of strings");
      stop.push_back(s.get<std::string>());
    }
  } else {
    fail_request("stop", "'stop' must be a string or an array of strings");
  }
  for (const std::string& s : stop)
    if (s.empty()) fail_request("stop", "a stop string must not be empty");
  return stop;
}

int64_t positive_tokens(int64_t n, const char* name) {
  if (n < 1) fail_request(name, "'{}' must be >= 1, got {}", name, n);
  return n;
}

GenerationParams parse_params(const json& body, uint64_t default_seed, const char* max_tokens_name) {
  reject_unsupported(body);
  GenerationParams p;
  p.model = string_field(body, "model");
  p.sampling = parse_sampling(body, default_seed);
  if (const auto n = integer_field(body, max_tokens_name)) {
    p.max_tokens = positive_tokens(*n, max_tokens_name);
  } else if (const auto legacy = integer_field(body, "max_tokens")) {
    p.max_tokens = positive_tokens(*legacy, "max_tokens");
  }
  p.stop = parse_stop(body);
  if (const auto n = integer_field(body, "n"); n && *n != 1)
    fail_request("n", "'n' must be 1 (one choice per request), got {}", *n);
  p.stream = bool_field(body, "stream").value_or(false);
  if (const json* o = find_field(body, "stream_options")) {
    if (!o->is_object()) fail_request("stream_options", "'stream_options' must be an object");
    p.include_usage = bool_field(*o, "include_usage").value_or(false);
  }
  if (const auto policy = string_field(body, "policy")) {
    if (*policy != "full")
      fail_request("policy", "'policy' may only be \"full\" (the server's --policy is the default), got '{}'",
                   *policy);
    p.full_attention = true;
  }
  return p;
}

std::variant<std::string, std::vector<int32_t>> parse_prompt(const json& body) {
  const json* f = find_field(body, "prompt");
  if (f == nullptr) fail_request("prompt", "'prompt' is required");
  if (f->is_string()) return f->get<std::string>();
  if (f->is_array() && !f->empty()) {
    if (f->size() == 1 && (*f)[0].is_string()) return (*f)[0].get<std::string>();
    if ((*f)[0].is_number()) return parse_token_ids(*f);
    if (f->size() == 1 && (*f)[0].is_array() && !(*f)[0].empty()) return parse_token_ids((*f)[0]);
    if (f->size() > 1) fail_request("prompt", "one prompt per request (n = 1), got {}", f->size());
  }
  fail_request("prompt", "'prompt' must be a string, an array of one string, or token ids");
}

std::string message_content(const json& message) {
  const json* content = find_field(message, "content");
  if (content == nullptr) return "";
  if (content->is_string()) return content->get<std::string>();
  if (!content->is_array()) fail_request("messages", "a message's 'content' must be a string or an array of parts");
  std::string text;
  for (const json& part : *content) {
    if (!part.is_object() || string_field(part, "type") != "text")
      fail_request("messages", "only text content parts are supported");
    text += string_field(part, "text").value_or("");
  }
  return text;
}

}  // namespace

std::vector<int32_t> parse_token_ids(const json& array) {
  std::vector<int32_t> ids;
  for (const json& t : array) {
    if (!t.is_number_integer() || t.get<int64_t>() < 0 || t.get<int64_t>() > std::numeric_limits<int32_t>::max())
      fail_request("prompt", "a token-id prompt must hold non-negative 32-bit integers");
    ids.push_back(static_cast<int32_t>(t.get<int64_t>()));
  }
  return ids;
}

json parse_json_body(std::string_view body) {
  json value = json::parse(body, nullptr, /*allow_exceptions=*/false);
  if (value.is_discarded()) fail_request("", "the request body is not valid JSON");
  if (!value.is_object()) fail_request("", "the request body must be a JSON object");
  return value;
}

CompletionRequest parse_completion_request(const json& body, uint64_t default_seed) {
  CompletionRequest r;
  r.prompt = parse_prompt(body);
  r.params = parse_params(body, default_seed, "max_tokens");
  return r;
}

ChatRequest parse_chat_request(const json& body, uint64_t default_seed) {
  static constexpr std::array kRoles = {"system", "developer", "user", "assistant", "tool"};
  ChatRequest r;
  const json* messages = find_field(body, "messages");
  if (messages == nullptr || !messages->is_array() || messages->empty())
    fail_request("messages", "'messages' must be a non-empty array");
  for (const json& m : *messages) {
    if (!m.is_object()) fail_request("messages", "every message must be an object");
    const auto role = string_field(m, "role");
    if (!role || std::find(kRoles.begin(), kRoles.end(), *role) == kRoles.end())
      fail_request("messages", "a message's 'role' must be one of system, developer, user, assistant, tool");
    r.messages.push_back({*role, message_content(m)});
  }
  r.params = parse_params(body, default_seed, "max_completion_tokens");
  return r;
}

}  // namespace flashmem::server
