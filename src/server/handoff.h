// The hand-off between a decode server and a prefill server (server/role.h): the body of
// POST /internal/prefill and of its answer, one definition for both sides.
//
//   request  {"model_id": "16 hex digits", "prompt": [token ids], "n_ctx": N, "policy": "full"?}
//   answer   {"sequence": ID, "n_tokens": N, "model_id": "16 hex digits", "prefill_seconds": S}
// The prefill server prefills exactly `prompt` (its parts as the decode server would cut them:
// both engines' max_batch), with the capacity `n_ctx` the decode server's sequence will have, so
// the persisted sequence attaches there with the same settings; "policy": "full" is the request's
// whole-KV extension. Errors are the usual OpenAI error objects; a model_id that is not the prefill
// server's is a 409 with code "model_mismatch".
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

namespace flashmem::server {

inline constexpr const char* kPrefillRoute = "/internal/prefill";

struct PrefillCall {
  uint64_t model_id = 0;        // Engine::model_id() of the decode server
  std::vector<int32_t> prompt;  // the tokens to prefill (non-empty)
  int64_t n_ctx = 0;            // the capacity of the sequence (> prompt.size())
  bool full_attention = false;  // "policy": "full"
};

struct PrefillAnswer {
  std::string sequence;          // the persisted entry to attach
  int64_t n_tokens = 0;          // prompt tokens it holds
  uint64_t model_id = 0;         // Engine::model_id() of the prefill server
  double prefill_seconds = 0;    // from the call's arrival to the entry's persisting
};

nlohmann::json to_json(const PrefillCall& call);
nlohmann::json to_json(const PrefillAnswer& answer);
// Throw ApiError 400 naming the field when `body` is not a well-formed call / answer.
PrefillCall parse_prefill_call(const nlohmann::json& body);
PrefillAnswer parse_prefill_answer(const nlohmann::json& body);

// The hex form of a model id (the JSON carries it as text: JSON numbers lose bits above 2^53).
std::string model_id_text(uint64_t id);

}  // namespace flashmem::server
