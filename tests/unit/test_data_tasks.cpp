// Task generator: determinism, lengths, evidence positions, scoring, on the word-level
// vocabulary and on a real model's SPM vocabulary (stories260K).
#include <gtest/gtest.h>

#include <string>

#include "data/task.h"
#include "data/word_vocab.h"
#include "gguf/gguf.h"
#include "tokenizer/tokenizer.h"
#include "util/error.h"

namespace flashmem::data {
namespace {

const Tokenizer& word_tokenizer() {
  static const Tokenizer t(word_vocab_spec());
  return t;
}

const Tokenizer& stories_tokenizer() {
  static const Tokenizer t =
      Tokenizer::from_gguf(GgufFile::open(std::string(FLASHMEM_TEST_DATA) + "/models/stories260K.gguf"));
  return t;
}

// The span's pieces as the model sees them (decode() would drop a leading space).
std::string decode_span(const Tokenizer& tok, const TaskSample& s, TokenSpan span) {
  std::string out;
  for (int64_t i = span.begin; i < span.end; ++i) out += tok.token_to_piece(s.tokens[i]);
  // stories260K spells the space marker U+2581 with byte tokens, which decode to the marker.
  for (size_t at; (at = out.find("\xE2\x96\x81")) != std::string::npos;) out.replace(at, 3, 1, ' ');
  return out;
}

std::vector<TaskSpec> all_specs(int64_t length) {
  std::vector<TaskSpec> specs;
  for (TaskFamily f : all_families()) {
    TaskSpec s;
    s.family = f;
    s.length = length;
    specs.push_back(s);
  }
  for (ValueKind v : {ValueKind::kWord, ValueKind::kUuid}) {
    TaskSpec s;
    s.value = v;
    s.length = length;
    specs.push_back(s);
  }
  TaskSpec words;
  words.filler = FillerKind::kWords;
  words.family = TaskFamily::kNiahMultikey;
  words.length = length;
  specs.push_back(words);
  return specs;
}

TEST(EvalTasks, DeterministicForASeedAndDifferentAcrossSeeds) {
  for (const TaskSpec& spec : all_specs(600)) {
    const TaskSample a = generate_task(spec, 7, word_tokenizer());
    const TaskSample b = generate_task(spec, 7, word_tokenizer());
    const TaskSample c = generate_task(spec, 8, word_tokenizer());
    EXPECT_EQ(a.prompt, b.prompt) << family_name(spec.family);
    EXPECT_EQ(a.tokens, b.tokens);
    EXPECT_EQ(a.answers, b.answers);
    EXPECT_NE(a.prompt, c.prompt) << family_name(spec.family);
  }
}

TEST(EvalTasks, LengthWithinOneFillerUnit) {
  for (const Tokenizer* tok : {&word_tokenizer(), &stories_tokenizer()}) {
    for (int64_t length : {700, 1000, 4000}) {
      for (const TaskSpec& spec : all_specs(length)) {
        const TaskSample s = generate_task(spec, 3, *tok);
        const auto n = static_cast<int64_t>(s.tokens.size());
        EXPECT_LE(n, length) << family_name(spec.family);
        // One unit is at most a ~13-word sentence: < 30 word tokens; stories260K spells every
        // space with 3 byte tokens, up to ~80.
        EXPECT_GE(n, length - (tok == &word_tokenizer() ? 30 : 80)) << family_name(spec.family) << " at " << length;
        EXPECT_EQ(s.tokens, tok->encode(s.prompt, true));
      }
    }
  }
}

TEST(EvalTasks, EvidenceTokensHoldTheNeedles) {
  for (const Tokenizer* tok : {&word_tokenizer(), &stories_tokenizer()}) {
    for (const TaskSpec& spec : all_specs(1500)) {
      for (uint64_t seed = 0; seed < 5; ++seed) {
        const TaskSample s = generate_task(spec, seed, *tok);
        ASSERT_FALSE(s.evidence.empty());
        ASSERT_FALSE(s.answers.empty());
        std::string evidence_text;
        for (const TokenSpan& e : s.evidence) {
          ASSERT_LT(e.begin, e.end);
          ASSERT_LE(e.end, static_cast<int64_t>(s.tokens.size()));
          evidence_text += decode_span(*tok, s, e) + "\n";
        }
        // Every expected answer is written in the evidence, and the evidence is not the question.
        for (const std::string& a : s.answers)
          EXPECT_NE(evidence_text.find(a), std::string::npos)
              << family_name(spec.family) << " answer " << a << " not in evidence";
        if (spec.family != TaskFamily::kFwe) {
          EXPECT_NE(evidence_text.find(spec.family == TaskFamily::kVt ? "VAR" : "special magic"),
                    std::string::npos);
          EXPECT_EQ(evidence_text.find("Question"), std::string::npos);
        }
      }
    }
  }
}

TEST(EvalTasks, NeedleDepthIsSwept) {
  TaskSpec spec;
  spec.length = 2000;
  int first_half = 0;
  for (uint64_t seed = 0; seed < 40; ++seed) {
    const TaskSample s = generate_task(spec, seed, word_tokenizer());
    if (s.evidence[0].begin < static_cast<int64_t>(s.tokens.size()) / 2) ++first_half;
  }
  EXPECT_GT(first_half, 8);
  EXPECT_LT(first_half, 32);
}

TEST(EvalTasks, WordVocabularyMakesEveryWordOneToken) {
  for (const TaskSpec& spec : all_specs(800)) {
    const TaskSample s = generate_task(spec, 11, word_tokenizer());
    for (const int32_t id : s.tokens) EXPECT_NE(id, word_tokenizer().unk_id());
    // Template words are single tokens: "special" and "Question" appear as whole pieces.
    int whole = 0;
    for (const int32_t id : s.tokens)
      if (word_tokenizer().token_to_piece(id) == " Question") ++whole;
    EXPECT_EQ(whole, 1) << family_name(spec.family);
  }
}

TEST(EvalTasks, TrainingFormMarksEveryAnswer) {
  TaskSpec spec;
  spec.family = TaskFamily::kNiahMultikey;
  spec.n_needles = 16;
  spec.n_answered = 6;
  spec.length = 1200;
  const TaskSample s = generate_task(spec, 5, word_tokenizer());
  ASSERT_EQ(s.answer_spans.size(), 6u);
  ASSERT_EQ(s.answers.size(), 6u);
  for (size_t i = 0; i < 6; ++i) {
    EXPECT_EQ(decode_span(word_tokenizer(), s, s.answer_spans[i]), " " + s.answers[i] + ".");
    if (i > 0) {
      EXPECT_LT(s.answer_spans[i - 1].end, s.answer_spans[i].begin);
    }
  }
  EXPECT_EQ(s.answer_spans.back().end, static_cast<int64_t>(s.tokens.size()));
}

// Answers that list several values name them in the order the text holds them, so a model
// can learn to produce them (a list in an order the prompt does not reveal can only be guessed).
TEST(EvalTasks, MultiValueAnswersFollowTheTextOrder) {
  for (const TaskFamily family : {TaskFamily::kNiahMultivalue, TaskFamily::kVt}) {
    for (uint64_t seed = 0; seed < 40; ++seed) {
      TaskSpec spec;
      spec.family = family;
      spec.length = seed % 2 ? 300 : 1500;  // short: needles often share a filler slot
      const TaskSample s = generate_task(spec, seed, word_tokenizer());
      ASSERT_GE(s.answers.size(), 2u);
      size_t last = 0;
      for (const std::string& a : s.answers) {
        const std::string needle = family == TaskFamily::kVt ? "VAR " + a + " =" : "is: " + a + ".";
        const size_t at = s.prompt.find(needle);
        ASSERT_NE(at, std::string::npos) << needle;
        EXPECT_GT(at, last) << family_name(family) << " seed " << seed << ": " << a << " out of order";
        last = at;
      }
    }
  }
}

TEST(EvalTasks, FweAnswersAreTheThreeMostFrequentWords) {
  TaskSpec spec;
  spec.family = TaskFamily::kFwe;
  spec.length = 1000;
  const TaskSample s = generate_task(spec, 2, word_tokenizer());
  ASSERT_EQ(s.answers.size(), 3u);
  auto occurrences = [&](const std::string& w) {
    int n = 0;
    for (size_t at = s.prompt.find(" " + w + " "); at != std::string::npos;
         at = s.prompt.find(" " + w + " ", at + 1))
      ++n;
    return n;
  };
  EXPECT_GT(occurrences(s.answers[2]), 0);
  EXPECT_GE(occurrences(s.answers[0]), occurrences(s.answers[1]));
  EXPECT_GE(occurrences(s.answers[1]), occurrences(s.answers[2]));
}

TEST(EvalTasks, InvalidSpecsAreRejected) {
  TaskSpec s;
  s.length = 10;
  EXPECT_THROW(generate_task(s, 1, word_tokenizer()), Error);  // too short for the template
  s.length = 0;
  EXPECT_THROW(validate_task_spec(s), Error);
  s.length = 500;
  s.n_needles = 3;
  EXPECT_THROW(validate_task_spec(s), Error);  // niah_single has one needle
  s.family = TaskFamily::kNiahMultikey;
  s.n_needles = 65;
  EXPECT_THROW(validate_task_spec(s), Error);
  s.n_needles = 4;
  s.n_answered = 5;
  EXPECT_THROW(validate_task_spec(s), Error);
  s.family = TaskFamily::kVt;
  s.n_needles = 0;
  s.n_answered = 2;
  EXPECT_THROW(validate_task_spec(s), Error);
  s.family = TaskFamily::kFwe;
  s.n_answered = 1;
  EXPECT_THROW(validate_task_spec(s), Error);
  EXPECT_THROW(parse_family("niah"), Error);
  EXPECT_THROW(parse_value_kind("float"), Error);
  EXPECT_THROW(parse_filler_kind("essay"), Error);
  EXPECT_EQ(parse_family("vt"), TaskFamily::kVt);
}

TEST(EvalTasks, StringMatchAllScoring) {
  EXPECT_EQ(score_output({"123", "abc"}, "x 123 y abc"), 1.0);
  EXPECT_EQ(score_output({"123", "abc"}, "x 123 y"), 0.5);
  EXPECT_EQ(score_output({"123"}, "12 3"), 0.0);
  EXPECT_EQ(score_output({}, "anything"), 0.0);
}

}  // namespace
}  // namespace flashmem::data
