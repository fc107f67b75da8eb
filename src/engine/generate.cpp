#include "engine/generate.h"

#include "util/error.h"
#include "util/timer.h"

namespace flashmem {

GenerationStats generate(Engine& engine, Sequence& sequence, Sampler& sampler,
                         const GenerationRequest& request) {
  if (request.prompt.empty()) fail("the prompt is empty");
  if (request.max_tokens < 0) fail("the number of tokens to generate must be >= 0");
  const int64_t needed =
      sequence.n_past() + static_cast<int64_t>(request.prompt.size()) + request.max_tokens;
  if (needed > sequence.capacity())
    fail("prompt ({} tokens) + {} new tokens exceed the context capacity of {}",
         request.prompt.size(), request.max_tokens, sequence.capacity());
  GenerationStats stats;
  stats.prompt_tokens = static_cast<int64_t>(request.prompt.size());
  std::vector<float> logits(static_cast<size_t>(engine.model().config().n_vocab));

  double t0 = now_seconds();
  engine.forward(sequence, request.prompt, logits.data(), false);
  stats.prefill_seconds = now_seconds() - t0;

  t0 = now_seconds();
  for (int64_t i = 0; i < request.max_tokens; ++i) {
    const int32_t token = sampler.sample(logits);
    if (request.is_end && request.is_end(token)) {
      stats.stopped_at_eog = true;
      break;
    }
    ++stats.generated_tokens;
    if (request.on_token && !request.on_token(token)) break;
    if (i + 1 == request.max_tokens && !request.feed_last) break;  // no forward pass needed
    engine.forward(sequence, std::span(&token, 1), logits.data(), false);
  }
  stats.decode_seconds = now_seconds() - t0;
  return stats;
}

}  // namespace flashmem
