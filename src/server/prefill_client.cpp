#include "server/prefill_client.h"

#include <httplib.h>

#include <charconv>
#include <cmath>

#include "server/api_error.h"
#include "server/request.h"
#include "util/error.h"
#include "util/timer.h"

namespace flashmem::server {
namespace {

using nlohmann::json;

constexpr std::string_view kScheme = "http://";
// A call without a time limit (--request-timeout 0) still needs a socket timeout: a day outlasts
// any prefill while keeping a dead peer from holding a thread for good.
constexpr double kNoLimitSeconds = 24 * 3600;

[[noreturn]] void bad_url(const std::string& url) {
  fail("--prefill-url must be http://HOST:PORT (the prefill server's address), not '{}'", url);
}

void set_timeout(httplib::Client& client, double seconds) {
  const auto whole = static_cast<time_t>(seconds);
  const auto micros = static_cast<time_t>((seconds - static_cast<double>(whole)) * 1e6);
  client.set_read_timeout(whole, micros);
  client.set_write_timeout(whole, micros);
  const double connect = std::min(seconds, kPrefillConnectSeconds);
  const auto connect_whole = static_cast<time_t>(connect);
  client.set_connection_timeout(connect_whole,
                                static_cast<time_t>((connect - static_cast<double>(connect_whole)) * 1e6));
}

ApiError prefill_failed(const PrefillUrl& url, const std::string& why) {
  return ApiError(502, "server_error", fmt::format("the prefill server at {} failed: {}", url.text(), why), "",
                  "prefill_failed");
}

}  // namespace

std::string PrefillUrl::text() const { return fmt::format("http://{}:{}", host, port); }

PrefillUrl parse_prefill_url(const std::string& url) {
  if (url.starts_with("https://"))
    fail("--prefill-url '{}': the servers speak plain HTTP to each other (put TLS in a proxy); use http://", url);
  if (!url.starts_with(kScheme)) bad_url(url);
  std::string rest = url.substr(kScheme.size());
  if (rest.ends_with('/')) rest.pop_back();
  const size_t colon = rest.rfind(':');
  if (colon == std::string::npos || colon == 0 || rest.find('/') != std::string::npos) bad_url(url);
  PrefillUrl out;
  out.host = rest.substr(0, colon);
  const std::string port = rest.substr(colon + 1);
  const auto [end, ec] = std::from_chars(port.data(), port.data() + port.size(), out.port);
  if (ec != std::errc() || end != port.data() + port.size() || out.port < 1 || out.port > 65535) bad_url(url);
  return out;
}

PrefillClient::PrefillClient(PrefillUrl url, std::string api_key, uint64_t model_id, int64_t max_batch)
    : url_(std::move(url)), api_key_(std::move(api_key)), model_id_(model_id), max_batch_(max_batch) {
  if (max_batch_ < 1) fail("internal: a prefill client needs max_batch >= 1");
}

PrefillAnswer PrefillClient::call(const PrefillCall& call, double timeout_seconds) const {
  httplib::Client client(url_.host, url_.port);
  set_timeout(client, timeout_seconds > 0 ? timeout_seconds : kNoLimitSeconds);
  httplib::Headers headers;
  if (!api_key_.empty()) headers.emplace("Authorization", "Bearer " + api_key_);
  const httplib::Result result = client.Post(kPrefillRoute, headers, to_json(call).dump(), "application/json");
  if (!result) {
    const httplib::Error e = result.error();
    if (e == httplib::Error::Read || e == httplib::Error::Write) {
      // A read that outlived the read timeout: the prefill server is there but too slow.
      throw ApiError(504, "server_error",
                     fmt::format("the prefill server at {} did not answer within the request's time limit "
                                 "of {} s (--request-timeout): {}",
                                 url_.text(), timeout_seconds, httplib::to_string(e)),
                     "", "prefill_timeout");
    }
    throw ApiError(503, "server_error",
                   fmt::format("the prefill server at {} cannot be reached ({}); this server decodes only "
                               "(--role decode): retry later",
                               url_.text(), httplib::to_string(e)),
                   "", "prefill_unavailable");
  }
  const json body = json::parse(result->body, nullptr, /*allow_exceptions=*/false);
  if (result->status != 200) {
    std::string message = fmt::format("HTTP {}", result->status);
    if (body.is_object() && body.contains("error") && body["error"].is_object()) {
      const json& error = body["error"];
      if (error.value("code", json()) == "model_mismatch")
        throw ApiError(502, "server_error",
                       fmt::format("the prefill server at {} serves another model: {}", url_.text(),
                                   error.value("message", std::string())),
                       "", "prefill_model_mismatch");
      if (error.contains("message") && error["message"].is_string())
        message += ": " + error["message"].get<std::string>();
    }
    if (result->status == 429)
      throw ApiError(429, "rate_limit_exceeded", fmt::format("the prefill server at {} is busy ({})", url_.text(), message),
                     "", "prefill_busy");
    throw prefill_failed(url_, message);
  }
  if (!body.is_object()) throw prefill_failed(url_, "its answer is not a JSON object");
  try {
    return parse_prefill_answer(body);
  } catch (const ApiError& e) {
    throw prefill_failed(url_, fmt::format("a malformed answer: {}", e.what()));
  }
}

void PrefillClient::hand_off(JobInput& input, double timeout_seconds) const {
  const auto n = static_cast<int64_t>(input.prompt.size());
  // The parts a cold prefill cuts from position 0; the last one (at least one token) stays here,
  // so the prefill server's parts and this server's are exactly those of one server.
  const int64_t remote = (n - 1) / max_batch_ * max_batch_;
  if (remote == 0) return;
  PrefillCall c{.model_id = model_id_,
                .prompt = std::vector<int32_t>(input.prompt.begin(), input.prompt.begin() + remote),
                .n_ctx = n + input.max_tokens,
                .full_attention = input.full_attention};
  const PrefillAnswer answer = call(c, timeout_seconds);
  if (answer.model_id != model_id_)
    throw ApiError(502, "server_error",
                   fmt::format("the prefill server at {} serves another model (id {}; this server's is {})",
                               url_.text(), model_id_text(answer.model_id), model_id_text(model_id_)),
                   "", "prefill_model_mismatch");
  if (answer.n_tokens != remote)
    throw prefill_failed(url_, fmt::format("it prefilled {} tokens of the {} sent", answer.n_tokens, remote));
  input.attach_id = answer.sequence;
  input.attach_tokens = answer.n_tokens;
  input.prefill_seconds = answer.prefill_seconds;
  input.handed_off_at = now_seconds();
}

}  // namespace flashmem::server
