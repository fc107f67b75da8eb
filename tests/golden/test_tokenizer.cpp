// Tokenizer conformance: every expected line of llama.cpp's vocab tests (tests/data/tokenizer/,
// see PROVENANCE.md) and the decode round trip, on the five vocabulary-only GGUF fixtures.
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "../common/vocab_vectors.h"
#include "gguf/gguf.h"
#include "tokenizer/tokenizer.h"

namespace flashmem {
namespace {

const std::string kDir = std::string(FLASHMEM_TEST_DATA) + "/tokenizer/";

using test::read_vocab_inputs;
using test::read_vocab_outputs;
using test::show_ids;

class VocabFixture : public ::testing::TestWithParam<const char*> {};

TEST_P(VocabFixture, ReproducesEveryExpectedLine) {
  const std::string base = kDir + "ggml-vocab-" + GetParam() + ".gguf";
  const GgufFile file = GgufFile::open(base);
  const Tokenizer tok = Tokenizer::from_gguf(file);
  const auto inputs = read_vocab_inputs(base + ".inp");
  const auto outputs = read_vocab_outputs(base + ".out");
  ASSERT_EQ(inputs.size(), outputs.size());
  ASSERT_GT(inputs.size(), 40u);
  size_t matched = 0;
  for (size_t k = 0; k < inputs.size(); ++k) {
    const auto ids = tok.encode(inputs[k], /*add_special=*/false, /*parse_special=*/false);
    EXPECT_EQ(show_ids(ids), show_ids(outputs[k])) << "test " << k << ": '" << inputs[k] << "'";
    matched += ids == outputs[k];
  }
  std::printf("[ fixture ] %s: %zu/%zu lines\n", GetParam(), matched, inputs.size());
}

// Every fixture input round-trips: SPM strips the space prefix it added, byte-level BPE is
// lossless for valid UTF-8, and none of the inputs contains the text of a user-defined token
// that decodes differently. (Exceptions in general: invalid UTF-8, which becomes U+FFFD.)
TEST_P(VocabFixture, DecodeRoundTrips) {
  const std::string base = kDir + "ggml-vocab-" + GetParam() + ".gguf";
  const Tokenizer tok = Tokenizer::from_gguf(GgufFile::open(base));
  for (const std::string& s : read_vocab_inputs(base + ".inp")) {
    EXPECT_EQ(tok.decode(tok.encode(s, false)), s);
    EXPECT_EQ(tok.decode(tok.encode(s, true)), s);  // BOS/EOS render empty
  }
}

INSTANTIATE_TEST_SUITE_P(Tokenizer, VocabFixture,
                         ::testing::Values("llama-spm", "phi-3", "gpt-2", "starcoder",
                                           "deepseek-coder"),
                         [](const auto& info) {
                           std::string name = info.param;
                           for (char& c : name) c = std::isalnum(static_cast<unsigned char>(c)) ? c : '_';
                           return name;
                         });

}  // namespace
}  // namespace flashmem
