// Dump files: round trip, every malformed field rejected with an Error; labels (top-p, head
// reduction, min_layers); SHA-256 vectors; the attention-probability observer.
#include <unistd.h>
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <filesystem>
#include <random>

#include "engine/session.h"
#include "tensor/convert.h"
#include "train/dump_format.h"
#include "train/labels.h"
#include "util/error.h"
#include "util/sha256.h"

namespace flashmem {
namespace {

const std::string kData = FLASHMEM_TEST_DATA;

// A valid document: 40 tokens, chunk 4 (10 chunks), rows at positions 20..39, two target layers.
DumpDocument sample_document() {
  DumpDocument d;
  DumpMeta& m = d.meta;
  m.backbone = "model.gguf";
  m.backbone_sha256 = std::string(64, 'a');
  m.document_id = "test#1";
  m.n_tokens = 40;
  m.layers = {1, 3};
  m.hidden_dim = 8;
  m.chunk_tokens = 4;
  m.top_p = 0.6;
  m.min_layers = 2;
  m.label_layers = 4;
  std::mt19937 rng(7);
  std::normal_distribution<float> normal;
  for (int32_t p = 20; p < 40; ++p) d.positions.push_back(p);
  for (size_t l = 0; l < 2; ++l) {
    std::vector<uint16_t> h(20 * 8), k(10 * 8);
    for (auto& x : h) x = f32_to_fp16(normal(rng));
    for (auto& x : k) x = f32_to_fp16(normal(rng));
    d.hidden.push_back(h);
    d.key_inputs.push_back(k);
  }
  d.label_pointers = {0};
  for (int32_t t = 0; t < 20; ++t) {
    for (int32_t c : {0, 2, (20 + t) / 4}) {
      d.label_indices.push_back(c);
      d.label_scores.push_back(2 + (c % 3 == 0 ? 1 : 0));
    }
    d.label_pointers.push_back(static_cast<int32_t>(d.label_indices.size()));
  }
  return d;
}

TEST(DumpFormat, RoundTrip) {
  const DumpDocument d = sample_document();
  const std::vector<uint8_t> bytes = dump_to_bytes(d);
  const DumpDocument r = dump_from_bytes(bytes.data(), bytes.size(), "mem");
  EXPECT_EQ(r.meta.document_id, d.meta.document_id);
  EXPECT_EQ(r.meta.layers, d.meta.layers);
  EXPECT_EQ(r.meta.top_p, d.meta.top_p);
  EXPECT_EQ(r.positions, d.positions);
  EXPECT_EQ(r.hidden, d.hidden);
  EXPECT_EQ(r.key_inputs, d.key_inputs);
  EXPECT_EQ(r.label_indices, d.label_indices);
  EXPECT_EQ(r.label_scores, d.label_scores);
  EXPECT_EQ(r.label_pointers, d.label_pointers);
  // And through a file.
  const std::string path = (std::filesystem::temp_directory_path() / ("flashmem_test_dump_" + std::to_string(::getpid()) + ".fmdump")).string();
  write_dump(path, d);
  EXPECT_EQ(read_dump(path).label_indices, d.label_indices);
  EXPECT_EQ(read_dump_meta(path).n_tokens, 40);
  std::filesystem::remove(path);
}

void expect_rejected(const DumpDocument& d, const std::string& needle) {
  EXPECT_THROW(validate_dump(d), Error);
  std::vector<uint8_t> bytes;
  try {
    bytes = dump_to_bytes_unvalidated(d);
  } catch (const Error& e) {  // the container itself cannot hold it (e.g. duplicate tensor names)
    EXPECT_NE(std::string(e.what()).find("duplicate"), std::string::npos) << e.what();
    return;
  }
  try {
    dump_from_bytes(bytes.data(), bytes.size(), "bad");
    ADD_FAILURE() << "accepted a dump that should fail with '" << needle << "'";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find(needle), std::string::npos) << e.what();
  }
}

TEST(DumpFormat, MalformedFieldsRejected) {
  { auto d = sample_document(); d.positions[5] = d.positions[4]; expect_rejected(d, "strictly increasing"); }
  { auto d = sample_document(); d.positions[0] = 40; expect_rejected(d, "positions"); }
  { auto d = sample_document(); d.label_pointers[3] = d.label_pointers[2] - 1; expect_rejected(d, "label_pointers"); }
  { auto d = sample_document(); d.label_pointers.back() -= 1; expect_rejected(d, "label_pointers"); }
  { auto d = sample_document(); d.label_indices[2] = 9; expect_rejected(d, "label_indices"); }  // row 0 (pos 20) cannot name chunk 9
  { auto d = sample_document(); d.label_indices[1] = -1; expect_rejected(d, "label_indices"); }
  { auto d = sample_document(); d.label_indices[1] = 0; expect_rejected(d, "strictly increasing"); }
  { auto d = sample_document(); d.label_scores[0] = 5; expect_rejected(d, "label_scores"); }
  { auto d = sample_document(); d.label_scores[0] = 1; expect_rejected(d, "label_scores"); }
  { auto d = sample_document(); d.hidden[1][17] = 0x7C00; expect_rejected(d, "non-finite"); }
  { auto d = sample_document(); d.key_inputs[0][3] = 0x7E00; expect_rejected(d, "non-finite"); }
  { auto d = sample_document(); d.meta.top_p = 1.5; expect_rejected(d, "top_p"); }
  { auto d = sample_document(); d.meta.min_layers = 5; expect_rejected(d, "min_layers"); }
  { auto d = sample_document(); d.meta.layers = {1, 1}; expect_rejected(d, "twice"); }
  { auto d = sample_document(); d.meta.head_reduce = "median"; expect_rejected(d, "head_reduce"); }
  { auto d = sample_document(); d.meta.backbone_sha256 = "xyz"; expect_rejected(d, "sha256"); }
}

TEST(DumpFormat, CorruptBytesRejected) {
  const std::vector<uint8_t> good = dump_to_bytes(sample_document());
  // Truncations at many points: never accepted, never a crash. (The last tensor is followed by up
  // to 31 bytes of alignment padding, so the last cut is 40 bytes into the data.)
  for (size_t n : {size_t{0}, size_t{4}, size_t{64}, good.size() / 2, good.size() - 40}) {
    EXPECT_THROW(dump_from_bytes(good.data(), n, "truncated"), Error) << n;
  }
  // A flipped bit in the tensor data is caught by the checksum.
  std::vector<uint8_t> flipped = good;
  flipped[flipped.size() - 200] ^= 0x10;
  EXPECT_THROW(dump_from_bytes(flipped.data(), flipped.size(), "flipped"), Error);
  // An indexer or model file is not a dump.
  const std::string model = kData + "/models/stories260K.gguf";
  EXPECT_THROW(read_dump(model), Error);
  EXPECT_THROW(list_dumps("/nonexistent/dir"), Error);
}

TEST(Sha256, KnownVectors) {
  EXPECT_EQ(sha256_hex("", 0), "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
  EXPECT_EQ(sha256_hex("abc", 3), "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
  const std::string two_blocks = "abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq";
  EXPECT_EQ(sha256_hex(two_blocks.data(), two_blocks.size()),
            "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1");
}

TEST(Labels, TopPAndHeadReduction) {
  // 2 heads over 8 keys, chunk 2 -> 4 chunks. Head 0 spreads over chunks 0..2, head 1 is focused
  // on chunk 3.
  const float probs[2][8] = {{0.2f, 0.2f, 0.15f, 0.15f, 0.15f, 0.15f, 0.0f, 0.0f},
                             {0.0f, 0.0f, 0.0f, 0.0f, 0.05f, 0.0f, 0.95f, 0.0f}};
  std::vector<float> mass;
  chunk_mass(&probs[0][0], 2, 8, 2, HeadReduce::kMean, mass);
  ASSERT_EQ(mass.size(), 4u);
  EXPECT_NEAR(mass[0], 0.2f, 1e-6);
  EXPECT_NEAR(mass[3], 0.475f, 1e-6);
  std::vector<int32_t> sel;
  top_p_chunks(mass, 0.6, sel);
  EXPECT_EQ(sel, (std::vector<int32_t>{0, 3}));  // 0.475 + 0.2 >= 0.6
  chunk_mass(&probs[0][0], 2, 8, 2, HeadReduce::kMax, mass);
  float total = 0;
  for (float m : mass) total += m;
  EXPECT_NEAR(total, 1.0f, 1e-6);
  sel.clear();
  top_p_chunks(mass, 1.0, sel);
  EXPECT_EQ(sel.size(), 4u);
  // min_layers: a chunk selected by 2 of 3 layers is golden with score 2 when min_layers = 2.
  LabelOptions o;
  o.chunk_tokens = 2;
  o.min_layers = 2;
  o.top_p = 0.5;
  LabelAccumulator acc(o, 3);
  const float only0[1][8] = {{0.5f, 0.5f, 0, 0, 0, 0, 0, 0}};
  const float only3[1][8] = {{0, 0, 0, 0, 0, 0, 0.5f, 0.5f}};
  acc.add_layer(7, &only0[0][0], 1, 8);
  acc.add_layer(7, &only0[0][0], 1, 8);
  acc.add_layer(7, &only3[0][0], 1, 8);
  std::vector<int32_t> idx, scores;
  acc.finish(7, idx, scores, 0, 0);
  EXPECT_EQ(idx, std::vector<int32_t>{0});
  EXPECT_EQ(scores, std::vector<int32_t>{2});
}

// Observer that records layer-0 probabilities of every position.
class RecordingKv final : public KvBackend, public AttentionObserver {
 public:
  RecordingKv(const ModelConfig& c, int64_t cap) : kv_(c.n_layers, cap, c.kv_dim(), DType::F16, c.values_in_keys) {}
  DType type() const override { return kv_.type(); }
  int64_t capacity() const override { return kv_.capacity(); }
  void begin_batch(int64_t p, int64_t n) override { kv_.begin_batch(p, n); }
  void store(int64_t l, int64_t p, const float* k, const float* v) override { kv_.store(l, p, k, v); }
  std::span<const KvSpan> spans(int64_t l) override { return kv_.spans(l); }
  void end_batch(bool e) override { kv_.end_batch(e); }
  void reset() override { kv_.reset(); }
  void fill_synthetic(int64_t, uint64_t) override {}
  AttentionObserver* attention_observer() override { return this; }
  bool wants_attention(int64_t pos) const override { return pos % 2 == 1; }
  void observe_attention(int64_t layer, int64_t pos, const float* probs, int64_t heads, int64_t keys) override {
    EXPECT_EQ(keys, pos + 1);
    for (int64_t h = 0; h < heads; ++h) {
      double sum = 0;
      for (int64_t k = 0; k < keys; ++k) {
        EXPECT_GE(probs[h * keys + k], 0.0f);
        sum += probs[h * keys + k];
      }
      EXPECT_NEAR(sum, 1.0, 1e-4) << "layer " << layer << " pos " << pos << " head " << h;
    }
    ++calls;
  }
  int64_t calls = 0;

 private:
  ContiguousKv kv_;
};

TEST(AttentionObserver, ProbabilitiesSumToOneAndLogitsUnchanged) {
  auto model = Model::load(kData + "/models/stories260K.gguf");
  const ModelConfig& c = model->config();
  std::vector<int32_t> ids;
  for (int i = 0; i < 50; ++i) ids.push_back(1 + (i * 37) % 500);
  SessionOptions o;
  o.n_ctx = 64;
  o.max_batch = 16;  // several batches: the observer sees them in order
  o.n_threads = 2;
  Session plain(model, o);
  auto kv = std::make_unique<RecordingKv>(c, 64);
  RecordingKv* rec = kv.get();
  Session observed(model, o, std::move(kv));
  std::vector<float> a(ids.size() * c.n_vocab), b(a.size());
  plain.forward(ids, a.data(), true);
  observed.forward(ids, b.data(), true);
  EXPECT_EQ(std::memcmp(a.data(), b.data(), a.size() * sizeof(float)), 0) << "the observer changed the logits";
  EXPECT_EQ(rec->calls, 25 * c.n_layers);
}

}  // namespace
}  // namespace flashmem
