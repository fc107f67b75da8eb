// `dump --corpus tasks:FAMILIES:N`: the evaluation suite's generated tasks as dump documents.
#include <gtest/gtest.h>

#include "data/task.h"
#include "gguf/gguf.h"
#include "tokenizer/tokenizer.h"
#include "train/corpus.h"
#include "util/error.h"

namespace flashmem {
namespace {

Tokenizer stories_tokenizer() {
  return Tokenizer::from_gguf(GgufFile::open(std::string(FLASHMEM_TEST_DATA) + "/models/stories260K.gguf"));
}

TEST(TrainCorpus, TaskDocumentsAreDeterministicAndFitTheLimit) {
  const Tokenizer tok = stories_tokenizer();
  CorpusOptions o;
  o.max_tokens = 512;
  o.seed = 5;
  const auto docs = load_corpus("tasks:niah_single,vt:4", tok, o);
  ASSERT_EQ(docs.size(), 4u);
  EXPECT_NE(docs[0].id.find("niah_single"), std::string::npos);
  EXPECT_NE(docs[1].id.find("vt"), std::string::npos);
  EXPECT_NE(docs[2].id.find("niah_single"), std::string::npos);
  for (const CorpusDocument& d : docs) {
    EXPECT_FALSE(d.text.empty());
    EXPECT_LE(static_cast<int64_t>(d.prompt.size() + d.text.size()), o.max_tokens);
    EXPECT_GT(d.prompt.size(), 256u);  // the haystack fills the length, not a stub
  }
  // The labeled text is the expected answer of the task generated with the same seed.
  data::TaskSpec spec;
  spec.length = o.max_tokens - 48;
  const data::TaskSample s = data::generate_task(spec, o.seed + 0, tok);
  EXPECT_EQ(docs[0].prompt, s.tokens);
  EXPECT_NE(tok.decode(docs[0].text).find(s.answers.at(0)), std::string::npos);
  // Same inputs, same documents.
  const auto again = load_corpus("tasks:niah_single,vt:4", tok, o);
  for (size_t i = 0; i < docs.size(); ++i) {
    EXPECT_EQ(docs[i].prompt, again[i].prompt);
    EXPECT_EQ(docs[i].text, again[i].text);
  }
}

TEST(TrainCorpus, BadTaskSourcesAreRejected) {
  const Tokenizer tok = stories_tokenizer();
  CorpusOptions o;
  o.max_tokens = 512;
  for (const char* bad : {"tasks:bogus:3", "tasks:niah_single:0", "tasks:niah_single", "tasks::2",
                          "tasks:niah_single:x", "tasks:niah_single:-1"})
    EXPECT_THROW(load_corpus(bad, tok, o), Error) << bad;
  o.max_tokens = 100;  // no room for a task plus its answer
  EXPECT_THROW(load_corpus("tasks:all:2", tok, o), Error);
}

}  // namespace
}  // namespace flashmem
