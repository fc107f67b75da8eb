// A request's sampling fields as the project's Sampler options (model/sampler.h): temperature,
// top_p, top_k, min_p and seed, with OpenAI's defaults (temperature 1, top_p 1) and top_k and
// min_p (llama.cpp's extensions) off unless given.
#pragma once
#include <cstdint>

#include <nlohmann/json.hpp>

#include "model/sampler.h"

namespace flashmem::server {

// Reads the fields of `body` (a JSON object); a value of the wrong type or outside its range is a
// 400 ApiError naming the field. `default_seed` is used when the request has no seed.
SamplerOptions parse_sampling(const nlohmann::json& body, uint64_t default_seed);

}  // namespace flashmem::server
