// Tokenizer conformance: every expected line of llama.cpp's vocab tests (tests/data/tokenizer/,
// see PROVENANCE.md) and the decode round trip, on the five vocabulary-only GGUF fixtures.
#include <gtest/gtest.h>

#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include "gguf/gguf.h"
#include "tokenizer/tokenizer.h"

namespace flashmem {
namespace {

const std::string kDir = std::string(FLASHMEM_TEST_DATA) + "/tokenizer/";

std::string slurp(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  EXPECT_TRUE(in.good()) << path;
  std::ostringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

// `.inp`: each test string is followed by "\n__ggml_vocab_test__\n" (the last one too), so the
// strings are what lies between separators; a string may be empty or whitespace only.
std::vector<std::string> read_inputs(const std::string& path) {
  const std::string text = slurp(path);
  const std::string sep = "\n__ggml_vocab_test__\n";
  std::vector<std::string> inputs;
  size_t pos = 0;
  while (pos < text.size()) {
    const size_t hit = text.find(sep, pos);
    if (hit == std::string::npos) {
      ADD_FAILURE() << path << ": text after the last separator";
      break;
    }
    inputs.push_back(text.substr(pos, hit - pos));
    pos = hit + sep.size();
  }
  return inputs;
}

// `.out`: one line per test, ids separated by spaces (an empty line = no tokens).
std::vector<std::vector<int32_t>> read_outputs(const std::string& path) {
  std::istringstream in(slurp(path));
  std::vector<std::vector<int32_t>> outputs;
  std::string line;
  while (std::getline(in, line)) {
    std::istringstream ls(line);
    std::vector<int32_t> ids;
    int32_t id;
    while (ls >> id) ids.push_back(id);
    outputs.push_back(std::move(ids));
  }
  return outputs;
}

std::string show(const std::vector<int32_t>& ids) {
  std::string s;
  for (const int32_t id : ids) {
    if (!s.empty()) s += ' ';
    s += std::to_string(id);
  }
  return s;
}

class VocabFixture : public ::testing::TestWithParam<const char*> {};

TEST_P(VocabFixture, ReproducesEveryExpectedLine) {
  const std::string base = kDir + "ggml-vocab-" + GetParam() + ".gguf";
  const GgufFile file = GgufFile::open(base);
  const Tokenizer tok = Tokenizer::from_gguf(file);
  const auto inputs = read_inputs(base + ".inp");
  const auto outputs = read_outputs(base + ".out");
  ASSERT_EQ(inputs.size(), outputs.size());
  ASSERT_GT(inputs.size(), 40u);
  size_t matched = 0;
  for (size_t k = 0; k < inputs.size(); ++k) {
    const auto ids = tok.encode(inputs[k], /*add_special=*/false, /*parse_special=*/false);
    EXPECT_EQ(show(ids), show(outputs[k])) << "test " << k << ": '" << inputs[k] << "'";
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
  for (const std::string& s : read_inputs(base + ".inp")) {
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
