#include "server/sampling.h"

#include "server/api_error.h"
#include "server/json_fields.h"

namespace flashmem::server {

namespace {

// OpenAI's documented range of temperature.
constexpr double kMaxTemperature = 2.0;

}  // namespace

SamplerOptions parse_sampling(const nlohmann::json& body, uint64_t default_seed) {
  SamplerOptions o{.temperature = 1.0f, .top_k = 0, .top_p = 1.0f, .min_p = 0.0f, .seed = default_seed};
  if (const auto t = number_field(body, "temperature")) {
    if (*t < 0 || *t > kMaxTemperature)
      fail_request("temperature", "'temperature' must be in [0, {}], got {}", kMaxTemperature, *t);
    o.temperature = static_cast<float>(*t);
  }
  if (const auto p = number_field(body, "top_p")) {
    if (*p <= 0 || *p > 1) fail_request("top_p", "'top_p' must be in (0, 1], got {}", *p);
    o.top_p = static_cast<float>(*p);
  }
  if (const auto k = integer_field(body, "top_k")) {
    if (*k < 0 || *k > INT32_MAX) fail_request("top_k", "'top_k' must be in [0, {}], got {}", INT32_MAX, *k);
    o.top_k = static_cast<int32_t>(*k);
  }
  if (const auto m = number_field(body, "min_p")) {
    if (*m < 0 || *m > 1) fail_request("min_p", "'min_p' must be in [0, 1], got {}", *m);
    o.min_p = static_cast<float>(*m);
  }
  // Any 64-bit integer is a seed (negative ones too, as OpenAI accepts them).
  if (const auto s = integer_field(body, "seed")) o.seed = static_cast<uint64_t>(*s);
  return o;
}

}  // namespace flashmem::server
