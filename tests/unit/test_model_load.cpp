// Loader-level malformed inputs (RELIABILITY.md, "metadata the loader uses"): the container
// parses but the model is wrong. Each case is a committed regression file in
// tests/malformed/model/, derived from a small valid random model; run with
// FLASHMEM_REGENERATE=1 to rewrite them after a deliberate format change.
#include <unistd.h>
#include <gtest/gtest.h>

#include <cstdlib>
#include <filesystem>
#include <functional>

#include "gguf/gguf.h"
#include "gguf_test_util.h"
#include "model/model.h"
#include "model/random_model.h"
#include "tokenizer/tokenizer.h"
#include "util/error.h"

namespace flashmem {
namespace {

namespace fs = std::filesystem;
const std::string kDir = std::string(FLASHMEM_TEST_DATA) + "/../malformed/model";
// The base model is as small as the format allows (Q8_0 rows of 32, the minimum vocabulary of
// 3 special + 256 byte tokens) so the committed regression files stay ~50 KB each.
constexpr int kVocab = 259;

using test::KeyEdit;
using test::TensorEdit;
const auto rewrite = test::rewrite_gguf;

struct Case {
  const char* file;
  const char* expect;  // substring of the error message
  KeyEdit edit_key;
  TensorEdit edit_tensor;
};

std::vector<Case> cases() {
  auto set_u32 = [](const char* name, uint32_t v) {
    return [=](const std::string& key, GgufWriter& w) {
      if (key != name) return true;
      w.set_u32(key, v);
      return false;
    };
  };
  auto drop = [](const char* name) {
    return [=](const std::string& key, GgufWriter&) { return key != name; };
  };
  return {
      {"block_count_100000.gguf", "block_count", set_u32("llama.block_count", 100000), nullptr},
      {"block_count_too_many_for_tensors.gguf", "blk.2", set_u32("llama.block_count", 3), nullptr},
      {"head_count_0.gguf", "head_count", set_u32("llama.attention.head_count", 0), nullptr},
      {"head_count_kv_not_dividing.gguf", "head_count_kv",
       set_u32("llama.attention.head_count_kv", 3), nullptr},
      {"missing_embedding_length.gguf", "embedding_length", drop("llama.embedding_length"), nullptr},
      {"missing_architecture.gguf", "general.architecture", drop("general.architecture"), nullptr},
      {"unknown_architecture.gguf", "mamba",
       [](const std::string& key, GgufWriter& w) {
         if (key != "general.architecture") return true;
         w.set_string(key, "mamba");
         return false;
       },
       nullptr},
      {"wrong_type_embedding_length.gguf", "embedding_length",
       [](const std::string& key, GgufWriter& w) {
         if (key != "llama.embedding_length") return true;
         w.set_string(key, "128");
         return false;
       },
       nullptr},
      {"missing_tensor_ffn_up.gguf", "ffn_up", nullptr,
       [](const GgufTensor& t, GgufWriter&) { return t.name != "blk.1.ffn_up.weight"; }},
      {"norm_stored_as_f16.gguf", "attn_norm", nullptr,
       [](const GgufTensor& t, GgufWriter& w) {
         if (t.name != "blk.0.attn_norm.weight") return true;
         std::vector<uint16_t> half(static_cast<size_t>(t.ne[0]), 0x3c00);  // 1.0
         w.add_tensor(t.name, DType::F16, {t.ne[0]}, half.data(), half.size() * 2);
         return false;
       }},
      {"wq_wrong_shape.gguf", "attn_q", nullptr,
       [](const GgufTensor& t, GgufWriter& w) {
         if (t.name != "blk.0.attn_q.weight") return true;
         std::vector<float> v(static_cast<size_t>(t.ne[0] * (t.ne[1] / 2)), 0.5f);
         w.add_tensor(t.name, DType::F32, {t.ne[0], t.ne[1] / 2}, v.data(), v.size() * 4);
         return false;
       }},
  };
}

// Tokenizer-level metadata cases (loaded through Tokenizer::from_gguf).
std::vector<Case> vocab_cases() {
  return {
      {"vocab_scores_as_u8.gguf", "scores",
       [](const std::string& key, GgufWriter& w) {
         if (key != "tokenizer.ggml.scores") return true;
         GgufValue v;
         v.type = GgufType::ARRAY;
         v.elem_type = GgufType::U8;
         v.array_size = kVocab;
         v.raw.assign(kVocab, 0);
         w.set_value(key, v);
         return false;
       },
       nullptr},
      {"vocab_bos_out_of_range.gguf", "bos",
       [](const std::string& key, GgufWriter& w) {
         if (key != "tokenizer.ggml.bos_token_id") return true;
         w.set_u32(key, 100000);
         return false;
       },
       nullptr},
      {"vocab_byte_token_negative.gguf", "0x",
       [](const std::string& key, GgufWriter& w) {
         if (key != "tokenizer.ggml.tokens") return true;
         GgufValue v;
         v.type = GgufType::ARRAY;
         v.elem_type = GgufType::STRING;
         for (int i = 0; i < kVocab; ++i) v.strings.push_back(i == 3 ? "<0x-1>" : std::string("t").append(std::to_string(i)));
         v.strings[0] = "<unk>";
         v.strings[1] = "<s>";
         v.strings[2] = "</s>";
         v.array_size = kVocab;
         w.set_value(key, v);
         return false;
       },
       nullptr},
      {"vocab_missing_tokens.gguf", "tokenizer.ggml.tokens",
       [](const std::string& key, GgufWriter&) { return key != "tokenizer.ggml.tokens"; }, nullptr},
  };
}

const fs::path& base_model() {
  static const fs::path path = [] {
    fs::path p = fs::path(::testing::TempDir()) / ("flashmem_base_model_" + std::to_string(::getpid()) + ".gguf");
    RandomModelSpec spec;
    spec.dim = 32;
    spec.n_layers = 2;
    spec.n_heads = 4;
    spec.n_kv_heads = 2;
    spec.ff_dim = 64;
    spec.n_vocab = kVocab;
    spec.type = DType::Q8_0;
    spec.seed = 7;
    write_random_model(spec, p.string());
    return p;
  }();
  return path;
}

void check_cases(const std::vector<Case>& list, const std::function<void(const std::string&)>& load) {
  const bool regenerate = std::getenv("FLASHMEM_REGENERATE") != nullptr;
  if (regenerate) {
    GgufFile src = GgufFile::open(base_model().string());
    for (const Case& c : list) {
      const auto bytes = rewrite(src, c.edit_key, c.edit_tensor);
      std::FILE* f = std::fopen((kDir + "/" + c.file).c_str(), "wb");
      ASSERT_NE(f, nullptr);
      std::fwrite(bytes.data(), 1, bytes.size(), f);
      std::fclose(f);
    }
  }
  for (const Case& c : list) {
    SCOPED_TRACE(c.file);
    const std::string path = kDir + "/" + c.file;
    ASSERT_TRUE(fs::exists(path)) << "missing regression file; run with FLASHMEM_REGENERATE=1";
    try {
      load(path);
      ADD_FAILURE() << "loaded without error";
    } catch (const Error& e) {
      EXPECT_NE(std::string(e.what()).find(c.expect), std::string::npos) << e.what();
    }
  }
}

TEST(ModelLoad, BaseModelLoads) {
  auto model = Model::load(base_model().string());
  EXPECT_EQ(model->config().n_layers, 2);
  EXPECT_EQ(model->config().group_size(), 2);
}

// general.file_type uses llama.cpp's file-type numbers, which differ from the tensor type ids
// (tensor type 8 = Q8_0, file type 8 = MOSTLY_Q5_0): the fixture files written by llama.cpp
// carry 0 / 1 / 7 for f32 / f16 / q8_0 models, 3 / 8 / 9 / 10 / 18 / 25 for its q4_1 / q5_0 /
// q5_1 / q2_K / q6_K / iq4_nl quantizations.
TEST(ModelLoad, RandomModelFileTypeIsLlamaCpps) {
  for (const auto& [type, fixture] : {std::pair{DType::F32, "rand-llama-f32.gguf"},
                                      std::pair{DType::F16, "rand-llama-f16.gguf"},
                                      std::pair{DType::Q8_0, "rand-llama-q8_0.gguf"},
                                      std::pair{DType::Q4_1, "rand-llama256-q4_1.gguf"},
                                      std::pair{DType::Q5_0, "rand-llama256-q5_0.gguf"},
                                      std::pair{DType::Q5_1, "rand-llama256-q5_1.gguf"},
                                      std::pair{DType::Q2_K, "rand-llama256-q2_k.gguf"},
                                      std::pair{DType::Q6_K, "rand-llama256-q6_k.gguf"},
                                      std::pair{DType::IQ4_NL, "rand-llama256-iq4_nl.gguf"}}) {
    const fs::path p = fs::path(::testing::TempDir()) / ("flashmem_file_type_" + std::to_string(::getpid()) + ".gguf");
    RandomModelSpec spec;
    spec.dim = dtype_info(type).block_elems == kQKBlock ? 256 : 32;  // K-quant rows: 256 elements
    spec.ff_dim = dtype_info(type).block_elems == kQKBlock ? 256 : 64;
    spec.n_vocab = kVocab;
    spec.type = type;
    write_random_model(spec, p.string());
    const int64_t expected =
        GgufFile::open(std::string(FLASHMEM_TEST_DATA) + "/models/" + fixture).get_int("general.file_type");
    EXPECT_EQ(GgufFile::open(p.string()).get_int("general.file_type"), expected) << fixture;
    fs::remove(p);
  }
}

TEST(ModelLoad, MalformedMetadataRejected) {
  check_cases(cases(), [](const std::string& path) { Model::load(path); });
}

TEST(ModelLoad, MalformedVocabularyRejected) {
  check_cases(vocab_cases(), [](const std::string& path) {
    GgufFile f = GgufFile::open(path);
    Tokenizer::from_gguf(f);
  });
}

}  // namespace
}  // namespace flashmem
