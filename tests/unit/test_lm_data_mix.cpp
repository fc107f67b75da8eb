// train-lm's task-family mix (--families): parsing rejects what cannot be trained, and a mixed
// stream holds every listed family, each with answer targets, as the generator writes them.
#include <gtest/gtest.h>

#include <map>
#include <string>

#include "data/word_vocab.h"
#include "lm/data.h"
#include "tokenizer/tokenizer.h"
#include "util/error.h"

namespace flashmem::lm {
namespace {

const Tokenizer& tokenizer() {
  static const Tokenizer t{data::word_vocab_spec()};
  return t;
}

TEST(LmDataMix, ParsesWeightsAndRejectsBadEntries) {
  const std::vector<FamilyWeight> mix = parse_family_mix({"niah_multikey:4", "vt:2.5", "niah_single"});
  ASSERT_EQ(mix.size(), 3u);
  EXPECT_EQ(mix[0].family, data::TaskFamily::kNiahMultikey);
  EXPECT_DOUBLE_EQ(mix[0].weight, 4.0);
  EXPECT_EQ(mix[1].family, data::TaskFamily::kVt);
  EXPECT_DOUBLE_EQ(mix[1].weight, 2.5);
  EXPECT_DOUBLE_EQ(mix[2].weight, 1.0);
  EXPECT_THROW(parse_family_mix({"vt:x"}), Error);
  EXPECT_THROW(parse_family_mix({"vt:2x"}), Error);
  EXPECT_THROW(parse_family_mix({"vt", "vt:2"}), Error);
  EXPECT_THROW(parse_family_mix({"nope"}), Error);
  DataOptions o;
  o.families = parse_family_mix({"fwe"});
  EXPECT_THROW(validate_data_options(o), Error);
  o.families = parse_family_mix({"vt:0"});
  EXPECT_THROW(validate_data_options(o), Error);
  o.families.clear();
  EXPECT_THROW(validate_data_options(o), Error);
}

// The family of a generated sequence, read from its question's wording (task.cpp's templates).
std::string family_of(const std::string& text) {
  if (text.find("VAR ") != std::string::npos) return "vt";
  if (text.find("What are all the special") != std::string::npos) return "niah_multivalue";
  if (text.find("What are the special") != std::string::npos) return "niah_multiquery";
  return "niah_single/multikey";
}

TEST(LmDataMix, MixedStreamHoldsEveryFamilyWithAnswerTargets) {
  DataOptions o;
  o.min_length = 512;
  o.max_length = 512;
  o.batch_tokens = 512;
  o.families = parse_family_mix({"niah_multikey", "niah_multivalue", "niah_multiquery", "vt:2"});
  validate_data_options(o);
  std::map<std::string, int> seen;
  for (int64_t step = 0; step < 40; ++step) {
    const Sequence s = make_sequence(o, 11, step, 0, tokenizer());
    const std::string text = tokenizer().decode(s.tokens);
    const std::string family = family_of(text);
    ++seen[family];
    ASSERT_FALSE(s.targets.empty()) << family;
    if (family == "vt") {
      // The answer lists 2-6 five-letter names: at least 2 x 5 letter targets.
      EXPECT_GE(s.targets.size(), 10u) << text;
    }
    for (const Target& t : s.targets) EXPECT_EQ(s.tokens[static_cast<size_t>(t.pos + 1)], t.token);
  }
  EXPECT_EQ(seen.size(), 4u);
  EXPECT_GT(seen["vt"], seen["niah_multivalue"]) << "vt has twice the weight";
}

}  // namespace
}  // namespace flashmem::lm
