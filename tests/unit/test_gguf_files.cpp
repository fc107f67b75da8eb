// The GGUF reader on the real files committed under tests/data: known fields, tensor data in range.
#include <gtest/gtest.h>

#include <filesystem>

#include "gguf/gguf.h"
#include "util/error.h"

namespace flashmem {
namespace {

std::vector<std::string> fixture_files() {
  std::vector<std::string> files;
  for (const char* dir : {"models", "tokenizer"})
    for (const auto& entry :
         std::filesystem::directory_iterator(std::string(FLASHMEM_TEST_DATA) + "/" + dir))
      if (entry.path().extension() == ".gguf") files.push_back(entry.path().string());
  std::sort(files.begin(), files.end());
  return files;
}

TEST(GgufFiles, EveryFixtureOpensAndTensorsLieInsideTheFile) {
  const std::vector<std::string> files = fixture_files();
  ASSERT_GE(files.size(), 10u);
  for (const std::string& path : files) {
    SCOPED_TRACE(path);
    GgufFile f = GgufFile::open(path);
    EXPECT_EQ(f.version(), 3u);
    EXPECT_EQ(f.alignment(), 32u);
    EXPECT_FALSE(f.get_string("general.architecture").empty());
    EXPECT_LE(f.data_offset(), f.file_size());
    const uint8_t* begin = f.file_data() + f.data_offset();
    const uint8_t* end = f.file_data() + f.file_size();
    for (const GgufTensor& t : f.tensors()) {
      EXPECT_EQ(t.offset % f.alignment(), 0u) << t.name;
      EXPECT_GE(t.data, begin) << t.name;
      EXPECT_LE(t.data + t.n_bytes, end) << t.name;
      EXPECT_EQ(f.find_tensor(t.name), &t);
    }
    const std::vector<std::string> tokens = f.get_string_array("tokenizer.ggml.tokens");
    EXPECT_GT(tokens.size(), 0u);
  }
}

TEST(GgufFiles, Stories260kKnownFields) {
  GgufFile f = GgufFile::open(std::string(FLASHMEM_TEST_DATA) + "/models/stories260K.gguf");
  EXPECT_EQ(f.get_string("general.architecture"), "llama");
  EXPECT_EQ(f.get_int("llama.block_count"), 5);
  EXPECT_EQ(f.get_int("llama.embedding_length"), 64);
  EXPECT_EQ(f.get_int("llama.attention.head_count"), 8);
  EXPECT_EQ(f.get_int("llama.attention.head_count_kv"), 4);
  EXPECT_EQ(f.get_int("llama.feed_forward_length"), 172);
  EXPECT_EQ(f.get_int_in("llama.context_length", 1, 1 << 20), 512);
  EXPECT_NEAR(f.get_float("llama.attention.layer_norm_rms_epsilon"), 1e-5, 1e-9);
  EXPECT_DOUBLE_EQ(f.get_float("llama.rope.freq_base"), 10000.0);
  EXPECT_EQ(f.tensors().size(), 2u + 5u * 9u);  // embedding + final norm, 9 per block (tied output)
  const std::vector<std::string> tokens = f.get_string_array("tokenizer.ggml.tokens");
  ASSERT_EQ(tokens.size(), 512u);
  EXPECT_EQ(tokens[0], "<unk>");
  EXPECT_EQ(tokens[1], "<s>");
  EXPECT_EQ(f.get_f32_array("tokenizer.ggml.scores").size(), 512u);
  EXPECT_EQ(f.get_int_array("tokenizer.ggml.token_type").size(), 512u);
  const GgufTensor& emb = f.tensor("token_embd.weight", {64, 512}, {DType::F32});
  EXPECT_EQ(emb.n_bytes, 64u * 512u * 4u);
  EXPECT_EQ(emb.rows(), 512);
  // Getter errors name the key.
  EXPECT_THROW(f.get_string("no.such.key"), Error);
  try {
    f.get_int("general.architecture");
    FAIL();
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("general.architecture"), std::string::npos);
  }
  EXPECT_THROW(f.get_f32_array("tokenizer.ggml.token_type"), Error);
  EXPECT_THROW(f.get_int_in("llama.block_count", 6, 10), Error);
  EXPECT_THROW(f.tensor("token_embd.weight", {512, 64}), Error);
  EXPECT_THROW(f.tensor("token_embd.weight", {64, 512}, {DType::Q8_0}), Error);
  EXPECT_FALSE(f.get_bool_opt("no.such.key").has_value());
}

TEST(GgufFiles, Q8ModelHasBlockTensors) {
  GgufFile f = GgufFile::open(std::string(FLASHMEM_TEST_DATA) + "/models/rand-llama-q8_0.gguf");
  const GgufTensor& emb = f.tensor("token_embd.weight", {128, 512});
  EXPECT_EQ(emb.type, DType::Q8_0);
  EXPECT_EQ(emb.n_bytes, 512u * (128u / 32u) * 34u);
}

TEST(GgufFiles, VocabOnlyFileHasNoTensors) {
  GgufFile f =
      GgufFile::open(std::string(FLASHMEM_TEST_DATA) + "/tokenizer/ggml-vocab-gpt-2.gguf");
  EXPECT_EQ(f.get_string("general.architecture"), "gpt2");
  EXPECT_TRUE(f.tensors().empty());
  EXPECT_GT(f.get_string_array("tokenizer.ggml.merges").size(), 1000u);
}

}  // namespace
}  // namespace flashmem
