// Indexer files: round trip, malformed files rejected with clean errors, safetensors validation,
// the key tower, and the CLI's input checks.
#include <unistd.h>
#include <gtest/gtest.h>

#include <cmath>
#include <cstdio>
#include <fstream>
#include <functional>
#include <random>
#include <sstream>

#include "gguf/gguf.h"
#include "gguf/gguf_checksum.h"
#include "indexer/indexer_model.h"
#include "indexer/safetensors.h"
#include "indexer/scoring.h"
#include "indexer/towers.h"
#include "util/error.h"
#include "util/raw_array.h"

namespace flashmem {
namespace {

const std::string kBin = FLASHMEM_BIN;

std::string temp_path(const std::string& name) { return ::testing::TempDir() + "fm_idxfile_" + std::to_string(::getpid()) + "_" + name; }

RandomIndexerSpec small_spec() {
  RandomIndexerSpec spec;
  spec.layers = {3, 1, 7};
  spec.hidden_dim = 64;
  spec.q_lora_rank = 32;
  spec.n_heads = 4;
  return spec;
}

// Expects `fn` to throw Error whose message contains `fragment`.
void expect_error(const std::function<void()>& fn, const std::string& fragment) {
  try {
    fn();
    ADD_FAILURE() << "no error; expected one mentioning '" << fragment << "'";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find(fragment), std::string::npos) << e.what();
  }
}

// ---- round trip ---------------------------------------------------------------------------------

TEST(IndexerFile, RoundTrip) {
  for (DType type : {DType::F32, DType::BF16, DType::F16}) {
    RandomIndexerSpec spec = small_spec();
    spec.type = type;
    const IndexerWeights weights = random_indexer_weights(spec, 5);
    const std::string path = temp_path("roundtrip.gguf");
    write_indexer(path, weights);
    const IndexerModel model = IndexerModel::load(path);
    const IndexerConfig& c = model.config();
    EXPECT_EQ(c.layers, spec.layers);  // file order kept
    EXPECT_EQ(c.hidden_dim, 64);
    EXPECT_EQ(c.q_lora_rank, 32);
    EXPECT_EQ(c.n_heads, 4);
    EXPECT_EQ(c.head_dim, 128);
    EXPECT_EQ(c.rope.rope_dim, 64);
    EXPECT_EQ(c.rope.base, 160000.0);
    EXPECT_EQ(c.rope.factor, 16.0);
    EXPECT_EQ(c.rope.orig_ctx, 65536);
    EXPECT_EQ(c.rope.beta_fast, 32.0);
    EXPECT_EQ(c.rope.beta_slow, 1.0);
    EXPECT_EQ(c.rope.max_positions, 65536 * 16);
    EXPECT_EQ(c.rms_eps, 1e-6f);
    EXPECT_EQ(c.chunk_tokens, 4);
    EXPECT_EQ(c.key_source, "hidden_mean");
    ASSERT_EQ(model.layers().size(), 3u);
    for (size_t i = 0; i < 3; ++i) {
      const IndexerLayer& l = model.layers()[i];
      const IndexerLayerWeights& w = weights.layers[i];
      EXPECT_EQ(l.layer_id, spec.layers[i]);
      EXPECT_EQ(l.wq_a.type, type);
      EXPECT_EQ(std::memcmp(l.wq_a.data, w.wq_a.bytes.data(), w.wq_a.bytes.size()), 0);
      EXPECT_EQ(std::memcmp(l.wq_b.data, w.wq_b.bytes.data(), w.wq_b.bytes.size()), 0);
      EXPECT_EQ(std::memcmp(l.weights_proj.data, w.weights_proj.bytes.data(),
                            w.weights_proj.bytes.size()), 0);
      ASSERT_TRUE(l.wk.has_value());
      EXPECT_EQ(std::memcmp(l.wk->data, w.wk->bytes.data(), w.wk->bytes.size()), 0);
      EXPECT_EQ(l.q_norm.size(), 32u);
      for (float g : l.q_norm) EXPECT_NEAR(g, 1.0f, 0.11f);
    }
    EXPECT_EQ(&model.layer(7), &model.layers()[2]);
    expect_error([&] { model.layer(2); }, "no target layer 2");
  }
}

TEST(IndexerFile, DeterministicAndSeedDependent) {
  const std::vector<uint8_t> a = indexer_to_bytes(random_indexer_weights(small_spec(), 1));
  const std::vector<uint8_t> b = indexer_to_bytes(random_indexer_weights(small_spec(), 1));
  const std::vector<uint8_t> c = indexer_to_bytes(random_indexer_weights(small_spec(), 2));
  EXPECT_EQ(a, b);
  EXPECT_NE(a, c);
}

TEST(IndexerFile, BackboneKeySourceHasNoWk) {
  RandomIndexerSpec spec = small_spec();
  spec.with_wk = false;
  const IndexerModel model = create_random_indexer(spec, 3);
  EXPECT_EQ(model.config().key_source, "backbone");
  EXPECT_FALSE(model.layers()[0].wk.has_value());
  std::vector<float> hidden(64, 0.5f);
  expect_error([&] { compute_key(model, model.layers()[0], hidden.data(), 1, 0, nullptr); },
               "no key tower");
}

// ---- malformed files ----------------------------------------------------------------------------

// Copies a serialized indexer through GgufWriter with one edit applied.
struct Edit {
  std::string drop_key;
  std::string set_key;
  GgufValue set_value;
  std::string drop_tensor;
  std::string reshape_tensor;  // replaced by a [3, 5] F32 tensor
  std::string add_tensor;      // an extra [4] F32 tensor
};

std::vector<uint8_t> rewrite(const std::vector<uint8_t>& bytes, const Edit& e) {
  const GgufFile file = GgufFile::parse(bytes.data(), bytes.size());
  GgufWriter w;
  for (const std::string& k : file.keys()) {
    if (k == e.drop_key || k == e.set_key) continue;
    w.set_value(k, *file.find(k));
  }
  if (!e.set_key.empty()) w.set_value(e.set_key, e.set_value);
  for (const GgufTensor& t : file.tensors()) {
    if (t.name == e.drop_tensor) continue;
    if (t.name == e.reshape_tensor) {
      const std::vector<float> zeros(15, 0.0f);
      w.add_tensor(t.name, DType::F32, {3, 5}, zeros.data(), zeros.size() * 4);
      continue;
    }
    std::vector<int64_t> shape(t.ne, t.ne + t.n_dims);
    w.add_tensor(t.name, t.type, shape, t.data, t.n_bytes);
  }
  if (!e.add_tensor.empty()) {
    const std::vector<float> four(4, 1.0f);
    w.add_tensor(e.add_tensor, DType::F32, {4}, four.data(), 16);
  }
  // A sound whole-file checksum, so that the check under test is what rejects the file.
  std::vector<uint8_t> out = w.to_bytes();
  gguf_fix_file_checksum(out, "flashmem-indexer.file_checksum");
  return out;
}

GgufValue u32_value(uint64_t v) {
  GgufValue value;
  value.type = GgufType::U32;
  value.u = v;
  return value;
}

GgufValue i32_array(const std::vector<int32_t>& ids) {
  GgufValue value;
  value.type = GgufType::ARRAY;
  value.elem_type = GgufType::I32;
  value.array_size = ids.size();
  value.raw.resize(ids.size() * 4);
  if (!ids.empty()) std::memcpy(value.raw.data(), ids.data(), value.raw.size());
  return value;
}

void expect_rejected(const std::vector<uint8_t>& bytes, const std::string& fragment) {
  expect_error([&] { IndexerModel::from_bytes(bytes, "bad.gguf"); }, fragment);
}

class MalformedIndexer : public ::testing::Test {
 protected:
  const std::vector<uint8_t> good_ = indexer_to_bytes(random_indexer_weights(small_spec(), 9));
};

TEST_F(MalformedIndexer, ValidCopyLoads) {
  EXPECT_NO_THROW(IndexerModel::from_bytes(rewrite(good_, {}), "copy"));
}

TEST_F(MalformedIndexer, MissingKeys) {
  for (const char* k : {"version", "layers", "hidden_dim", "n_heads", "head_dim", "q_lora_rank",
                        "rope_dim", "rope_base", "yarn_factor", "yarn_orig_ctx", "yarn_beta_fast",
                        "yarn_beta_slow", "rms_eps", "chunk_tokens", "key_source", "checksum",
                        "file_checksum"}) {
    Edit e;
    e.drop_key = std::string("flashmem-indexer.") + k;
    expect_rejected(rewrite(good_, e), k);
  }
  Edit arch;
  arch.drop_key = "general.architecture";
  expect_rejected(rewrite(good_, arch), "general.architecture");
}

TEST_F(MalformedIndexer, BadValues) {
  const struct {
    const char* key;
    GgufValue value;
    const char* fragment;
  } cases[] = {
      {"flashmem-indexer.head_dim", u32_value(64), "head_dim 64"},
      {"flashmem-indexer.rope_dim", u32_value(32), "rope_dim 32"},
      {"flashmem-indexer.n_heads", u32_value(0), "n_heads 0"},
      {"flashmem-indexer.version", u32_value(3), "version 3"},
      {"flashmem-indexer.chunk_tokens", u32_value(0), "chunk_tokens 0"},
      {"flashmem-indexer.hidden_dim", u32_value(65), "wq_a"},  // shapes no longer match
      {"flashmem-indexer.layers", i32_array({}), "no target layers"},
      {"flashmem-indexer.layers", i32_array({3, 1, 3}), "listed twice"},
      {"flashmem-indexer.layers", i32_array({3, 1, -7}), "-7"},
      {"flashmem-indexer.layers", i32_array({3, 1}), "tensors"},  // layer 7's tensors are strays
  };
  for (const auto& c : cases) {
    Edit e;
    e.set_key = c.key;
    e.set_value = c.value;
    expect_rejected(rewrite(good_, e), c.fragment);
  }
  Edit arch;
  arch.set_key = "general.architecture";
  arch.set_value.type = GgufType::STRING;
  arch.set_value.str = "llama";
  expect_rejected(rewrite(good_, arch), "flashmem-indexer");
}

TEST_F(MalformedIndexer, TensorProblems) {
  Edit shape;
  shape.reshape_tensor = "idx.l1.wq_b.weight";
  expect_rejected(rewrite(good_, shape), "idx.l1.wq_b.weight");
  Edit missing;
  missing.drop_tensor = "idx.l7.weights_proj.weight";
  expect_rejected(rewrite(good_, missing), "idx.l7.weights_proj.weight");
  Edit no_wk;
  no_wk.drop_tensor = "idx.l3.wk.weight";
  expect_rejected(rewrite(good_, no_wk), "idx.l3.wk.weight");
  Edit stray;
  stray.add_tensor = "idx.l9.q_norm.weight";
  expect_rejected(rewrite(good_, stray), "tensors");
}

TEST_F(MalformedIndexer, BadChecksum) {
  std::vector<uint8_t> bytes = good_;
  bytes[bytes.size() - 3] ^= 0x01;  // last tensor's data
  expect_rejected(bytes, "checksum");
  Edit e;
  e.set_key = "flashmem-indexer.checksum";
  e.set_value.type = GgufType::U64;
  e.set_value.u = 12345;
  expect_rejected(rewrite(good_, e), "checksum");
}

TEST_F(MalformedIndexer, Truncated) {
  for (size_t keep : {size_t{0}, size_t{10}, good_.size() / 3, good_.size() - 1}) {
    std::vector<uint8_t> bytes(good_.begin(), good_.begin() + static_cast<std::ptrdiff_t>(keep));
    EXPECT_THROW(IndexerModel::from_bytes(bytes, "truncated.gguf"), Error) << keep;
  }
  const std::string path = temp_path("truncated.gguf");
  {
    std::ofstream out(path, std::ios::binary);
    out.write(reinterpret_cast<const char*>(good_.data()), static_cast<std::streamsize>(good_.size() / 2));
  }
  EXPECT_THROW(IndexerModel::load(path), Error);
}

TEST(IndexerWriter, RejectsInconsistentWeights) {
  IndexerWeights w = random_indexer_weights(small_spec(), 4);
  w.layers[1].wq_a.rows = 31;
  expect_error([&] { indexer_to_bytes(w); }, "wq_a");
  w = random_indexer_weights(small_spec(), 4);
  w.layers.pop_back();
  expect_error([&] { indexer_to_bytes(w); }, "layers");
  w = random_indexer_weights(small_spec(), 4);
  w.config.head_dim = 64;
  expect_error([&] { indexer_to_bytes(w); }, "head_dim");
}

TEST_F(MalformedIndexer, RandomCorruptionIsAnErrorNeverACrash) {
  std::mt19937 rng(77);
  int rejected = 0;
  for (int trial = 0; trial < 300; ++trial) {
    std::vector<uint8_t> bytes = good_;
    const int flips = 1 + trial % 3;
    for (int f = 0; f < flips; ++f) {
      // Half the trials hit the header (keys, tensor table), where parsing is most delicate.
      const size_t limit = trial % 2 ? bytes.size() : std::min<size_t>(bytes.size(), 2048);
      bytes[rng() % limit] ^= static_cast<uint8_t>(1u << (rng() % 8));
    }
    try {
      IndexerModel::from_bytes(bytes, "corrupt.gguf");
    } catch (const Error&) {
      ++rejected;
    }
  }
  // Flips in padding or in an unused key's bytes may leave a valid file; most must be caught.
  EXPECT_GT(rejected, 250);
}

// ---- safetensors validation ---------------------------------------------------------------------

std::vector<uint8_t> safetensors_bytes(const std::string& json, size_t data_bytes) {
  std::vector<uint8_t> out(8 + json.size() + data_bytes, 0);
  const uint64_t len = json.size();
  std::memcpy(out.data(), &len, 8);
  std::memcpy(out.data() + 8, json.data(), json.size());
  return out;
}

TEST(Safetensors, ParsesValidFile) {
  const auto bytes = safetensors_bytes(
      R"({"__metadata__":{"a":"b"},"x":{"dtype":"BF16","shape":[2,3],"data_offsets":[0,12]},)"
      R"("y":{"dtype":"F32","shape":[],"data_offsets":[12,16]}})", 16);
  const SafetensorsFile f = SafetensorsFile::parse(bytes.data(), bytes.size());
  ASSERT_EQ(f.tensors().size(), 2u);
  const SafetensorsTensor* x = f.find("x");
  ASSERT_NE(x, nullptr);
  EXPECT_EQ(x->shape, (std::vector<int64_t>{2, 3}));
  EXPECT_EQ(x->n_bytes, 12u);
  EXPECT_EQ(f.find("y")->n_elements(), 1);
  EXPECT_EQ(f.find("z"), nullptr);
}

TEST(Safetensors, RejectsMalformed) {
  const struct {
    std::string json;
    size_t data;
    const char* fragment;
  } cases[] = {
      {"not json", 0, "JSON"},
      {"[1,2]", 0, "object"},
      {R"({"x":{"dtype":"Q9","shape":[1],"data_offsets":[0,1]}})", 1, "unknown dtype"},
      {R"({"x":{"dtype":"F32","shape":[2],"data_offsets":[0,4]}})", 4, "need 8"},
      {R"({"x":{"dtype":"F32","shape":[1],"data_offsets":[0,4]}})", 2, "outside"},
      {R"({"x":{"dtype":"F32","shape":[-1],"data_offsets":[0,4]}})", 4, "non-negative"},
      {R"({"x":{"dtype":"F32","shape":[1],"data_offsets":[4,0]}})", 4, "outside"},
      {R"({"x":{"dtype":"F32","shape":[1]}})", 4, "data_offsets"},
      {R"({"x":{"dtype":"F32","shape":[4611686018427387904,4],"data_offsets":[0,4]}})", 4, "exceeds"},
      {R"({"x":{"dtype":"F32","shape":[1],"data_offsets":[0,4]},)"
       R"("y":{"dtype":"F32","shape":[1],"data_offsets":[2,6]}})", 8, "overlap"},
  };
  for (const auto& c : cases) {
    const auto bytes = safetensors_bytes(c.json, c.data);
    expect_error([&] { SafetensorsFile::parse(bytes.data(), bytes.size()); }, c.fragment);
  }
  std::vector<uint8_t> short_file = {1, 2, 3};
  expect_error([&] { SafetensorsFile::parse(short_file.data(), short_file.size()); }, "too short");
  auto huge_len = safetensors_bytes("{}", 0);
  huge_len[7] = 0x7F;
  expect_error([&] { SafetensorsFile::parse(huge_len.data(), huge_len.size()); }, "header length");
}

TEST(Safetensors, RandomCorruptionIsAnErrorNeverACrash) {
  const auto good = safetensors_bytes(
      R"({"x":{"dtype":"BF16","shape":[2,3],"data_offsets":[0,12]},)"
      R"("y":{"dtype":"F32","shape":[4],"data_offsets":[12,28]}})", 28);
  std::mt19937 rng(78);
  for (int trial = 0; trial < 500; ++trial) {
    std::vector<uint8_t> bytes = good;
    bytes[rng() % (bytes.size() - 28)] = static_cast<uint8_t>(rng());  // header bytes only
    try {
      SafetensorsFile::parse(bytes.data(), bytes.size());
    } catch (const Error&) {
    }
  }
}

// ---- key tower ----------------------------------------------------------------------------------

TEST(KeyTower, MeanOfTokensAndRelativePositions) {
  const IndexerModel model = create_random_indexer(small_spec(), 21);
  const IndexerLayer& layer = model.layers()[0];
  std::mt19937 rng(4);
  std::normal_distribution<float> normal(0.0f, 1.0f);
  std::vector<float> rows(4 * 64), mean(64, 0.0f);  // [4 tokens, D], [D]
  for (float& x : rows) x = normal(rng);
  for (int t = 0; t < 4; ++t)
    for (int i = 0; i < 64; ++i) mean[i] += rows[t * 64 + i] / 4;
  EXPECT_EQ(compute_key(model, layer, rows.data(), 4, 100, nullptr),
            compute_key_from_mean(model, layer, mean.data(), 100, nullptr));

  // q and k both go through RoPE + Hadamard, so a logit depends on positions only through their
  // difference (up to the bf16 roundings and fp8 quantization).
  std::vector<float> hidden(64);
  for (float& x : hidden) x = normal(rng);
  auto logit = [&](int64_t q_pos, int64_t k_pos) {
    const CompressedKey key = compute_key(model, layer, rows.data(), 4, k_pos, nullptr);
    const IndexerQuery q = compute_query(model, layer, hidden.data(), q_pos, nullptr);
    float out;
    score_logits_ref(q, key.data(), 1, &out);
    return out;
  };
  const float near = logit(1000, 900), shifted = logit(51000, 50900);
  EXPECT_NEAR(near, shifted, 0.03f * (std::fabs(near) + 0.05f));
  expect_error([&] { compute_key(model, layer, rows.data(), 0, 0, nullptr); }, "at least one token");
}

// ---- CLI ----------------------------------------------------------------------------------------

// Runs a command; returns its exit code and stderr.
int run(const std::string& command, std::string* err = nullptr) {
  const std::string err_path = temp_path("stderr.txt");
  const int rc = std::system((command + " 2>" + err_path).c_str());
  if (err != nullptr) {
    std::ifstream in(err_path);
    std::stringstream ss;
    ss << in.rdbuf();
    *err = ss.str();
  }
  return rc;
}

TEST(IndexerCli, MakeRandomScoreAndInputErrors) {
  const std::string gguf = temp_path("cli.gguf");
  ASSERT_EQ(run(kBin + " indexer make-random --layers 4,9 --dim 32 --rank 16 --heads 3 --type bf16 "
                       "--seed 5 --out " + gguf), 0);
  const IndexerModel model = IndexerModel::load(gguf);
  EXPECT_EQ(model.config().layers, (std::vector<int32_t>{4, 9}));
  EXPECT_EQ(model.config().n_heads, 3);
  EXPECT_EQ(model.layers()[0].wq_b.type, DType::BF16);

  const std::string hidden = temp_path("cli_hidden.f32"), keys = temp_path("cli_keys.u8"),
                    out = temp_path("cli_out.f32");
  write_f32_file(hidden, std::vector<float>(32, 0.25f));
  {
    std::vector<uint8_t> k(10 * kCompressedKeyBytes, 0x30);
    std::ofstream f(keys, std::ios::binary);
    f.write(reinterpret_cast<const char*>(k.data()), static_cast<std::streamsize>(k.size()));
  }
  const std::string args = " --indexer " + gguf + " --keys " + keys + " --out " + out;
  ASSERT_EQ(run(kBin + " indexer score --hidden " + hidden + " --pos 3" + args), 0);
  EXPECT_EQ(read_f32_file(out).size(), 10u);

  std::string err;
  const std::string bad_hidden = temp_path("cli_bad_hidden.f32");
  write_f32_file(bad_hidden, std::vector<float>(31, 0.25f));
  EXPECT_NE(run(kBin + " indexer score --hidden " + bad_hidden + " --pos 3" + args, &err), 0);
  EXPECT_NE(err.find("error:"), std::string::npos) << err;
  EXPECT_NE(run(kBin + " indexer score --hidden " + hidden + " --pos 3 --layer 5" + args, &err), 0);
  EXPECT_NE(err.find("no target layer 5"), std::string::npos) << err;
  EXPECT_NE(run(kBin + " indexer score --hidden " + hidden + " --pos -1" + args, &err), 0);
  EXPECT_NE(err.find("error:"), std::string::npos) << err;
  EXPECT_NE(run(kBin + " indexer score --hidden " + hidden + " --pos 1 --ensemble max --logits" +
                args, &err), 0);
  // 10 keys split into 2 layers × 5 with --keys-per-layer; 9 keys do not.
  ASSERT_EQ(run(kBin + " indexer score --hidden " + hidden + " --pos 1 --keys-per-layer" + args), 0);
  EXPECT_EQ(read_f32_file(out).size(), 5u);
  {
    std::vector<uint8_t> k(9 * kCompressedKeyBytes, 0x30);
    std::ofstream f(keys, std::ios::binary);
    f.write(reinterpret_cast<const char*>(k.data()), static_cast<std::streamsize>(k.size()));
  }
  EXPECT_NE(run(kBin + " indexer score --hidden " + hidden + " --pos 1 --keys-per-layer" + args,
                &err), 0);
  EXPECT_NE(err.find("not a multiple"), std::string::npos) << err;
}

TEST(IndexerCli, RejectsBadFiles) {
  std::string err;
  const std::string junk = temp_path("junk.safetensors");
  {
    std::ofstream f(junk, std::ios::binary);
    f << "this is not a checkpoint";
  }
  EXPECT_NE(run(kBin + " indexer convert " + junk + " --out " + temp_path("junk.gguf"), &err), 0);
  EXPECT_NE(err.find("error:"), std::string::npos) << err;
  EXPECT_NE(run(kBin + " indexer make-random --layers 1,x --out " + temp_path("x.gguf"), &err), 0);
  EXPECT_NE(err.find("--layers"), std::string::npos) << err;
}

}  // namespace
}  // namespace flashmem
