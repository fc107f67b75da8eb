// The generation loop shared by `run`, `bench` and (later) the server.
#pragma once
#include <cstdint>
#include <functional>
#include <span>
#include <vector>

#include "model/sampler.h"
#include "engine/session.h"

namespace flashmem {

struct GenerationStats {
  int64_t prompt_tokens = 0;
  int64_t generated_tokens = 0;
  double prefill_seconds = 0;
  double decode_seconds = 0;
  bool stopped_at_eog = false;
};

struct GenerationRequest {
  std::span<const int32_t> prompt;
  int64_t max_tokens = 128;
  // True for end-of-generation tokens (EOS, ...): generation stops, the token is not emitted.
  std::function<bool(int32_t)> is_end;
  // Called with every generated token as soon as it is sampled; return false to stop.
  std::function<bool(int32_t)> on_token;
  // True: the last sampled token (unless it ended generation) is fed too, so that the sequence's
  // history holds every emitted token (a conversation persisted to continue later). False: it is
  // only emitted (one forward pass less).
  bool feed_last = false;
};

// Prefills the prompt (appending to what the sequence already holds), then samples up to
// max_tokens tokens, one decode() per token. Throws Error when prompt + max_tokens exceeds the
// sequence's capacity.
GenerationStats generate(Engine& engine, Sequence& sequence, Sampler& sampler,
                         const GenerationRequest& request);
inline GenerationStats generate(Session& session, Sampler& sampler, const GenerationRequest& request) {
  return generate(session.engine(), session.sequence(), sampler, request);
}

}  // namespace flashmem
