#include "lm/data.h"

#include <algorithm>
#include <cmath>
#include <exception>
#include <string>

#include "data/rng.h"
#include "tokenizer/tokenizer.h"
#include "util/error.h"

namespace flashmem::lm {

std::vector<FamilyWeight> parse_family_mix(const std::vector<std::string>& items) {
  std::vector<FamilyWeight> mix;
  for (const std::string& item : items) {
    const size_t colon = item.find(':');
    FamilyWeight f;
    f.family = data::parse_family(item.substr(0, colon));
    if (colon != std::string::npos) {
      const std::string w = item.substr(colon + 1);
      size_t used = 0;
      try {
        f.weight = std::stod(w, &used);
      } catch (const std::exception&) {
        used = 0;
      }
      if (used == 0 || used != w.size()) fail("--families: bad weight '{}' in '{}'", w, item);
    }
    for (const FamilyWeight& g : mix)
      if (g.family == f.family) fail("--families: '{}' is listed twice", data::family_name(f.family));
    mix.push_back(f);
  }
  return mix;
}

void validate_data_options(const DataOptions& o) {
  if (o.min_length < 64) fail("--min-len {} must be >= 64 (the template alone needs ~60 tokens)", o.min_length);
  if (o.max_length < o.min_length) fail("--max-len {} must be >= --min-len {}", o.max_length, o.min_length);
  if (o.max_length > (1 << 16)) fail("--max-len {} is above 65536", o.max_length);
  if (o.ramp_steps < 0) fail("--ramp-steps must be >= 0");
  if (o.needle_ramp_steps < 0) fail("--needle-ramp-steps must be >= 0");
  if (o.batch_tokens < o.min_length) fail("--batch-tokens {} must be >= --min-len", o.batch_tokens);
  if (o.needle_every < 16) fail("--needle-every {} must be >= 16 (a needle is ~17 tokens)", o.needle_every);
  if (o.query_every < o.needle_every) fail("--query-every must be >= --needle-every");
  for (const double f : {o.word_values, o.uuid_values, o.word_filler})
    if (!(f >= 0 && f <= 1)) fail("data fractions must be in [0, 1]");
  if (o.word_values + o.uuid_values > 1) fail("word + uuid value fractions exceed 1");
  if (!(o.repeat_fraction >= 0 && o.repeat_fraction <= 1)) fail("--repeat-fraction {} must be in [0, 1]", o.repeat_fraction);
  if (o.repeat_steps < 0) fail("--repeat-steps must be >= 0");
  if (!(o.lm_weight >= 0 && o.lm_weight <= 1)) fail("--lm-weight {} must be in [0, 1]", o.lm_weight);
  if (o.families.empty()) fail("--families is empty");
  for (const FamilyWeight& f : o.families) {
    if (f.family == data::TaskFamily::kFwe) fail("--families: fwe has no training form");
    if (!(f.weight > 0 && std::isfinite(f.weight)))
      fail("--families: weight {} of {} must be > 0", f.weight, data::family_name(f.family));
  }
}

int64_t step_length(const DataOptions& o, uint64_t seed, int64_t step) {
  // Longest length of this step: geometric ramp from min to max. The step's length is drawn
  // log-uniformly in [min, longest] so short contexts stay in the mix after the ramp.
  const double progress = o.ramp_steps > 0 ? std::min(1.0, static_cast<double>(step) / static_cast<double>(o.ramp_steps)) : 1.0;
  const double lo = std::log(static_cast<double>(o.min_length));
  const double hi = lo + progress * (std::log(static_cast<double>(o.max_length)) - lo);
  data::Rng rng(data::mix_seed(seed ^ 0x5eedull, static_cast<uint64_t>(step)));
  const double len = std::exp(lo + rng.uniform() * (hi - lo));
  // Multiples of 32 tokens: a handful of distinct shapes, reused scratch sizes.
  return std::clamp<int64_t>(static_cast<int64_t>(len / 32.0) * 32, o.min_length, o.max_length);
}

int64_t step_sequences(const DataOptions& o, int64_t length) {
  return std::max<int64_t>(1, o.batch_tokens / length);
}

Sequence sample_to_sequence(const data::TaskSample& s, bool drop_final_token, double lm_weight) {
  Sequence q;
  q.tokens = s.tokens;
  const auto T = static_cast<int64_t>(s.tokens.size());
  std::vector<float> weight(static_cast<size_t>(T), static_cast<float>(lm_weight));  // [T] by target token
  for (const data::TokenSpan& span : s.answer_spans) {
    const int64_t end = drop_final_token ? span.end - 1 : span.end;
    for (int64_t p = span.begin; p < end; ++p) weight[static_cast<size_t>(p)] = -1.0f;  // answer
  }
  for (int64_t p = 1; p < T; ++p) {
    const float w = weight[static_cast<size_t>(p)];
    if (w < 0) q.targets.push_back({p - 1, s.tokens[static_cast<size_t>(p)], 1.0f});
    else if (w > 0) q.targets.push_back({p - 1, s.tokens[static_cast<size_t>(p)], w});
  }
  return q;
}

Sequence repeat_sequence(int64_t length, int32_t n_vocab, int32_t bos, data::Rng& rng) {
  // Runs of random ordinary tokens (ids from 3: past <unk> <s> </s>) alternating with copies of
  // earlier stretches at random distances. Why random: with one fixed-length repeat the model
  // learns "attend 63 positions back" instead of matching content, and fails at other lengths.
  Sequence q;
  q.tokens.push_back(bos);
  auto random_token = [&] { return 3 + static_cast<int32_t>(rng.below(static_cast<uint64_t>(n_vocab - 3))); };
  while (static_cast<int64_t>(q.tokens.size()) < length) {
    const auto have = static_cast<int64_t>(q.tokens.size());
    const int64_t room = length - have;
    if (have > 16 && rng.uniform() < 0.5) {
      // A copy of k tokens from an earlier start; its first token cannot be predicted, the rest
      // can (the previous token's earlier occurrence says what follows).
      const int64_t k = std::min<int64_t>(room, 4 + static_cast<int64_t>(rng.below(21)));
      const int64_t max_start = have - k;
      if (max_start < 1) continue;
      const int64_t start = 1 + static_cast<int64_t>(rng.below(static_cast<uint64_t>(max_start)));
      for (int64_t i = 0; i < k; ++i) {
        q.tokens.push_back(q.tokens[static_cast<size_t>(start + i)]);
        if (i > 0) q.targets.push_back({have + i - 1, q.tokens.back(), 1.0f});
      }
    } else {
      const int64_t k = std::min<int64_t>(room, 1 + static_cast<int64_t>(rng.below(16)));
      for (int64_t i = 0; i < k; ++i) q.tokens.push_back(random_token());
    }
  }
  return q;
}

namespace {

// A family drawn by weight; a one-family mix draws nothing (so needle-lm's stream is unchanged).
data::TaskFamily draw_family(const std::vector<FamilyWeight>& mix, data::Rng& rng) {
  if (mix.size() == 1) return mix[0].family;
  double total = 0;
  for (const FamilyWeight& f : mix) total += f.weight;
  double u = rng.uniform() * total;
  for (const FamilyWeight& f : mix) {
    if (u < f.weight) return f.family;
    u -= f.weight;
  }
  return mix.back().family;
}

}  // namespace

Sequence make_sequence(const DataOptions& o, uint64_t seed, int64_t step, int64_t index,
                       const Tokenizer& tokenizer) {
  const int64_t length = step_length(o, seed, step);
  const uint64_t sample_seed = data::mix_seed(data::mix_seed(seed, static_cast<uint64_t>(step)),
                                              static_cast<uint64_t>(index));
  data::Rng rng(sample_seed ^ 0xda7aull);
  double repeat = o.repeat_fraction;
  if (o.repeat_steps > 0)
    repeat *= std::max(0.0, 1.0 - static_cast<double>(step) / static_cast<double>(o.repeat_steps));
  if (repeat > 0 && rng.uniform() < repeat)
    return repeat_sequence(length, tokenizer.n_vocab(), std::max(tokenizer.bos_id(), 0), rng);
  data::TaskSpec spec;
  spec.family = draw_family(o.families, rng);
  spec.length = length;
  const double v = rng.uniform();
  spec.value = v < o.word_values ? data::ValueKind::kWord
               : v < o.word_values + o.uuid_values ? data::ValueKind::kUuid
                                                   : data::ValueKind::kNumber;
  spec.filler = rng.uniform() < o.word_filler ? data::FillerKind::kWords : data::FillerKind::kNoise;
  // Between half and all of the density target, so the model also sees sparse haystacks.
  int64_t dense = std::clamp<int64_t>(length / o.needle_every, 2, 64);
  if (o.needle_ramp_steps > 0 && step < o.needle_ramp_steps)
    dense = std::max<int64_t>(1, 1 + (dense - 1) * step / o.needle_ramp_steps);
  if (spec.family == data::TaskFamily::kNiahSingle) {
    spec.n_needles = 1;
    spec.n_answered = 1;
  } else if (spec.family == data::TaskFamily::kNiahMultikey) {
    spec.n_needles = static_cast<int>(std::max<int64_t>(1, dense / 2) +
                                      static_cast<int64_t>(rng.below(dense - std::max<int64_t>(1, dense / 2) + 1)));
    spec.n_answered = static_cast<int>(std::clamp<int64_t>(length / o.query_every, 1, spec.n_needles));
  } else {
    // One question over 2..kMixMaxNeedles needles (capped by the needle ramp, so these start as
    // 2-needle tasks too); the generator's training form answers it once.
    const int64_t most = std::clamp<int64_t>(dense, 2, kMixMaxNeedles);
    spec.n_needles = 2 + static_cast<int>(rng.below(static_cast<uint64_t>(most - 1)));
    spec.n_answered = 1;
  }
  // Shrink the needle count if the fixed parts do not fit (short lengths with uuid values).
  for (;;) {
    try {
      return sample_to_sequence(data::generate_task(spec, sample_seed, tokenizer), false, o.lm_weight);
    } catch (const Error&) {
      if (spec.n_needles <= 1) throw;
      spec.n_needles = std::max(1, spec.n_needles * 3 / 4);
      spec.n_answered = std::min(spec.n_answered, spec.n_needles);
    }
  }
}

}  // namespace flashmem::lm
