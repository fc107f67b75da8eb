// Sequence::persist + SequenceOptions::attach: a sequence persisted in the slow tier (disk and
// Redis), destroyed, and attached again continues with bit-identical logits (f32 KV) for every
// policy that keeps its state in the sequence, whether it was decoding or in the middle of a
// prompt fed in parts; and every damaged or mismatched entry is a clear Error, never used.
#include <gtest/gtest.h>

#include <cstring>
#include <filesystem>
#include <fstream>
#include <optional>

#include "../common/redis_server.h"
#include "../common/temp_dir.h"
#include "flashmem/engine.h"
#include "flashmem/sequence.h"
#include "indexer/indexer_model.h"
#include "util/error.h"
#include "util/raw_array.h"

namespace flashmem {
namespace {

const std::string kData = FLASHMEM_TEST_DATA;

std::shared_ptr<const IndexerModel> random_indexer(int64_t dim) {
  RandomIndexerSpec spec;
  spec.layers = {1, 2};
  spec.hidden_dim = dim;
  spec.q_lora_rank = 32;
  spec.n_heads = 4;
  return std::make_shared<const IndexerModel>(create_random_indexer(spec, 9));
}

using Logits = std::vector<float>;  // [n_vocab]

class SequencePersistTest : public ::testing::TestWithParam<std::tuple<std::string, std::string>> {
 protected:
  void SetUp() override {
    if (tier() == "redis") {
      FLASHMEM_SKIP_WITHOUT_REDIS();
      redis_.emplace();
      store_ = redis_->url("persist-test");
    } else {
      dir_ = test::fresh_dir("sequence_persist");
      store_ = "disk:" + dir_.string();
    }
  }
  std::string tier() const { return std::get<0>(GetParam()); }
  std::string policy() const { return std::get<1>(GetParam()); }

  SequenceOptions options(const std::string& attach = "") const {
    PagedKvOptions o;
    // "lsa-prefetch": lsa with lookahead recall, its selection chosen one step before each boundary.
    const bool prefetch = policy() == "lsa-prefetch";
    o.policy = parse_policy_spec(prefetch ? "lsa" : policy());
    o.policy.lsa_prefetch = prefetch ? 1 : 0;
    o.page_tokens = 16;
    o.tau = 4;  // several cycles within the test's steps
    o.sink_pages = 1;
    o.recent_pages = 1;
    if (o.policy.kind == PolicyKind::kLsa) {
      o.indexer = random_indexer(model_->config().dim);
      o.budget = 0.3;  // the selection leaves pages out, so a wrong restore would show
    }
    return {.n_ctx = 512, .kv_type = DType::F32, .paged = o, .attach = attach};
  }

  // Feeds tokens as a prompt (prompt_continues on request) and returns the last logits.
  Logits feed(Engine& engine, Sequence& seq, std::span<const int32_t> tokens, bool continues = false) {
    Logits logits(static_cast<size_t>(model_->config().n_vocab));
    const BatchItem item{.sequence = &seq, .tokens = tokens, .logits = logits.data(), .prompt_continues = continues};
    engine.decode(std::span(&item, 1));
    return logits;
  }
  // `steps` greedy decode steps after `last`; the logits of each.
  std::vector<Logits> decode(Engine& engine, Sequence& seq, Logits last, int steps) {
    std::vector<Logits> out;
    for (int s = 0; s < steps; ++s) {
      const auto next = static_cast<int32_t>(std::max_element(last.begin(), last.end()) - last.begin());
      last = feed(engine, seq, std::span(&next, 1));
      out.push_back(last);
    }
    return out;
  }

  std::span<const int32_t> ids(size_t first, size_t n) const { return std::span(ids_).subspan(first, n); }

  std::shared_ptr<Model> model_ = Model::load(kData + "/models/stories260K.gguf");
  std::vector<int32_t> ids_ = read_i32_file(kData + "/logits/s260k_seq_a.i32");
  std::optional<test::RedisServer> redis_;
  std::filesystem::path dir_;
  std::string store_;
};

// Turn 1 (prompt + decode), persist, destroy; a new sequence attaches and runs turn 2 (a new
// prompt + decode): every logit equals one sequence that never moved.
TEST_P(SequencePersistTest, AttachedSequenceContinuesBitIdentically) {
  ASSERT_GE(ids_.size(), 200u);
  const EngineOptions eo{.n_threads = 2, .max_batch = 48, .kv_store = store_};
  std::vector<Logits> reference;
  {
    Engine engine(model_, eo);
    Sequence seq(engine, options());
    reference = decode(engine, seq, feed(engine, seq, ids(0, 150)), 9);
    const Logits turn2 = feed(engine, seq, ids(150, 30));
    reference.push_back(turn2);
    for (Logits& l : decode(engine, seq, turn2, 9)) reference.push_back(std::move(l));
  }
  std::vector<Logits> moved;
  std::vector<int32_t> history;
  {
    Engine engine(model_, eo);
    Sequence seq(engine, options());
    moved = decode(engine, seq, feed(engine, seq, ids(0, 150)), 9);
    seq.persist("conv-1");
    history = seq.tokens();
  }
  Engine engine(model_, eo);  // a new engine: nothing of the first survives but the store
  Sequence seq(engine, options("conv-1"));
  EXPECT_EQ(seq.n_past(), 159);
  EXPECT_EQ(seq.tokens(), history);
  const Logits turn2 = feed(engine, seq, ids(150, 30));
  moved.push_back(turn2);
  for (Logits& l : decode(engine, seq, turn2, 9)) moved.push_back(std::move(l));
  ASSERT_EQ(moved.size(), reference.size());
  for (size_t i = 0; i < moved.size(); ++i)
    ASSERT_EQ(0, std::memcmp(moved[i].data(), reference[i].data(), moved[i].size() * sizeof(float)))
        << "step " << i;
  // The entry was only read: a second sequence attaches it too, and forgetting removes it.
  { Sequence again(engine, options("conv-1")); EXPECT_EQ(again.n_past(), 159); }
  EXPECT_TRUE(engine.forget_sequence("conv-1"));
  EXPECT_FALSE(engine.forget_sequence("conv-1"));
  EXPECT_THROW(Sequence(engine, options("conv-1")), Error);
}

// A prompt persisted between its parts (the server keeps prompt prefixes this way) and finished
// after attach gives the bits of the whole prompt in one call; persisting again under the same
// id replaces the entry.
TEST_P(SequencePersistTest, PromptPersistedBetweenPartsEqualsOneCall) {
  const EngineOptions eo{.n_threads = 2, .max_batch = 48, .kv_store = store_};
  std::vector<Logits> reference;
  {
    Engine engine(model_, eo);
    Sequence seq(engine, options());
    reference = decode(engine, seq, feed(engine, seq, ids(0, 160)), 6);
  }
  Engine engine(model_, eo);
  {
    Sequence seq(engine, options());
    feed(engine, seq, ids(0, 48), /*continues=*/true);
    seq.persist("prefix");
    feed(engine, seq, ids(48, 48), /*continues=*/true);
    seq.persist("prefix");  // a new generation replaces the first
  }
  Sequence seq(engine, options("prefix"));
  EXPECT_TRUE(seq.prompt_open());
  EXPECT_EQ(seq.n_past(), 96);
  const std::vector<Logits> moved = decode(engine, seq, feed(engine, seq, ids(96, 64)), 6);
  for (size_t i = 0; i < moved.size(); ++i)
    ASSERT_EQ(0, std::memcmp(moved[i].data(), reference[i].data(), moved[i].size() * sizeof(float)))
        << "step " << i;
  if (!dir_.empty()) {
    int pages_files = 0;
    for (const auto& e : std::filesystem::directory_iterator(dir_))
      pages_files += e.path().extension() == ".kvpages";
    EXPECT_EQ(pages_files, 1) << "the replaced generation's pages are deleted";
  }
}

// Persisted between a lookahead selection and its boundary (--lsa-prefetch): the pending
// selection is dropped in the saving runtime too, so it and an attached copy continue alike.
class SequencePersistLookaheadTest : public SequencePersistTest {};

TEST_P(SequencePersistLookaheadTest, PersistedInsideALookaheadContinuesAlikeInBothRuntimes) {
  const EngineOptions eo{.n_threads = 2, .max_batch = 48, .kv_store = store_};
  std::vector<Logits> kept;
  Engine engine(model_, eo);
  {
    Sequence seq(engine, options());
    // 11 decode steps: tau 4, so step 11 chose the selection of the boundary at step 12.
    decode(engine, seq, feed(engine, seq, ids(0, 150)), 11);
    seq.persist("mid");
    kept = decode(engine, seq, feed(engine, seq, ids(150, 30)), 9);
  }
  Sequence seq(engine, options("mid"));
  const std::vector<Logits> attached = decode(engine, seq, feed(engine, seq, ids(150, 30)), 9);
  ASSERT_EQ(attached.size(), kept.size());
  for (size_t i = 0; i < kept.size(); ++i)
    ASSERT_EQ(0, std::memcmp(attached[i].data(), kept[i].data(), kept[i].size() * sizeof(float))) << "step " << i;
}

INSTANTIATE_TEST_SUITE_P(
    TiersAndPolicies, SequencePersistTest,
    ::testing::Combine(::testing::Values("disk", "redis"),
                       ::testing::Values("full", "lsa", "lsa-prefetch", "quest:2", "random:0.5",
                                         "recency:0.5")),
    [](const auto& info) {
      std::string name = std::get<0>(info.param) + "_" + std::get<1>(info.param);
      for (char& c : name)
        if (c == ':' || c == '.' || c == '-') c = '_';
      return name;
    });

// Lookahead only: the other policies have no selection pending between cycles.
INSTANTIATE_TEST_SUITE_P(Tiers, SequencePersistLookaheadTest,
                         ::testing::Combine(::testing::Values("disk", "redis"), ::testing::Values("lsa-prefetch")),
                         [](const auto& info) { return std::get<0>(info.param) + "_lsa_prefetch"; });

// ---- Faults: each a clear Error, never a sequence built on wrong pages.

class SequencePersistFaultTest : public ::testing::Test {
 protected:
  std::filesystem::path dir_ = test::fresh_dir("sequence_persist_fault");
  EngineOptions eo_{.n_threads = 1, .max_batch = 48, .kv_store = "disk:" + dir_.string()};
  std::shared_ptr<Model> model_ = Model::load(kData + "/models/stories260K.gguf");
  std::vector<int32_t> ids_ = read_i32_file(kData + "/logits/s260k_seq_a.i32");

  SequenceOptions options(const std::string& attach = "", int64_t tau = 4) const {
    PagedKvOptions o;
    o.policy = parse_policy_spec("full");
    o.page_tokens = 16;
    o.tau = tau;
    return {.n_ctx = 256, .kv_type = DType::F32, .paged = o, .attach = attach};
  }
  // Persists 100 tokens (6 full pages and 4 positions of an open page) as `id`.
  void persist(const std::string& id) {
    Engine engine(model_, eo_);
    Sequence seq(engine, options());
    engine.forward(seq, std::span(ids_.data(), 100), nullptr, false);
    seq.persist(id);
  }
  std::filesystem::path file_with(const std::string& extension) const {
    for (const auto& e : std::filesystem::directory_iterator(dir_))
      if (e.path().extension() == extension) return e.path();
    return {};
  }
  void expect_attach_error(const std::string& id, const std::string& needle, const SequenceOptions& o) {
    Engine engine(model_, eo_);
    try {
      Sequence seq(engine, o);
      FAIL() << "attached despite: " << needle;
    } catch (const Error& e) {
      EXPECT_NE(std::string(e.what()).find(needle), std::string::npos) << e.what();
    }
  }
};

TEST_F(SequencePersistFaultTest, AnotherModelIsRefused) {
  persist("s");
  auto other = Model::load(kData + "/models/rand-llama-q8_0.gguf");
  Engine engine(other, eo_);
  try {
    Sequence seq(engine, options("s"));
    FAIL();
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("another model"), std::string::npos) << e.what();
  }
}

TEST_F(SequencePersistFaultTest, OtherSettingsAreRefused) {
  persist("s");
  expect_attach_error("s", "tau=4; this sequence has tau=8", options("s", 8));
}

// --budget-tokens is a setting only when given: records without it (all records written before
// the flag existed) attach to runs without it, and every other combination is refused.
TEST_F(SequencePersistFaultTest, BudgetTokensMustMatch) {
  auto with_budget = [&](const std::string& attach, double budget, int64_t budget_tokens) {
    SequenceOptions o = options(attach);
    o.paged->policy = parse_policy_spec("recency:0.5");
    o.paged->budget = budget;
    o.paged->budget_tokens = budget_tokens;
    return o;
  };
  auto persist_with = [&](const std::string& id, double budget, int64_t budget_tokens) {
    Engine engine(model_, eo_);
    Sequence seq(engine, with_budget("", budget, budget_tokens));
    engine.forward(seq, std::span(ids_.data(), 100), nullptr, false);
    seq.persist(id);
  };
  const PersistSettings plain = persist_settings(model_->config(), DType::F32, *with_budget("", -1, 0).paged);
  for (const auto& [name, value] : plain) EXPECT_NE(name, "budget_tokens") << "written only when set";

  persist_with("old", -1, 0);  // the settings of a record from before the flag
  {
    Engine engine(model_, eo_);
    Sequence seq(engine, with_budget("old", -1, 0));
    EXPECT_EQ(seq.n_past(), 100);
  }
  expect_attach_error("old", "has no setting budget_tokens", with_budget("old", -1, 64));

  persist_with("tok", -1, 64);
  {
    Engine engine(model_, eo_);
    Sequence seq(engine, with_budget("tok", -1, 64));
    EXPECT_EQ(seq.n_past(), 100);
  }
  expect_attach_error("tok", "budget_tokens=64; this sequence has budget_tokens=128", with_budget("tok", -1, 128));
  expect_attach_error("tok", "budget=-1; this sequence has budget=0.5", with_budget("tok", 0.5, 0));
  expect_attach_error("tok", "settings, this sequence", with_budget("tok", -1, 0));
}

TEST_F(SequencePersistFaultTest, DamagedRecordsAreRefused) {
  persist("s");
  const std::filesystem::path record = file_with(".kvseq");
  ASSERT_FALSE(record.empty());
  std::string bytes;
  {
    std::ifstream in(record, std::ios::binary);
    bytes.assign(std::istreambuf_iterator<char>(in), {});
  }
  auto write = [&](const std::string& b) { std::ofstream(record, std::ios::binary | std::ios::trunc) << b; };
  std::string flipped = bytes;
  flipped[flipped.size() / 2] ^= 0x20;
  write(flipped);
  expect_attach_error("s", "damaged (checksum mismatch)", options("s"));
  write(bytes.substr(0, bytes.size() / 3));
  expect_attach_error("s", "persisted sequence 's'", options("s"));
  write(bytes.substr(0, 5));
  expect_attach_error("s", "truncated", options("s"));
  write(bytes);  // intact again: attaches
  Engine engine(model_, eo_);
  EXPECT_EQ(Sequence(engine, options("s")).n_past(), 100);
}

TEST_F(SequencePersistFaultTest, MissingOrDamagedPagesAreRefused) {
  persist("s");
  const std::filesystem::path pages = file_with(".kvpages");
  ASSERT_FALSE(pages.empty());
  // A flipped byte inside page 0 (its data starts after the 4096-byte file header): the page's
  // checksum no longer matches when it is read.
  {
    std::fstream f(pages, std::ios::in | std::ios::out | std::ios::binary);
    f.seekg(4096 + 100);
    char c = 0;
    f.read(&c, 1);
    c ^= 0x01;
    f.seekp(4096 + 100);
    f.write(&c, 1);
  }
  expect_attach_error("s", "KV page 0 could not be read: checksum mismatch", options("s"));
  std::filesystem::resize_file(pages, std::filesystem::file_size(pages) / 2);  // later pages gone
  expect_attach_error("s", "is missing from", options("s"));
  std::filesystem::remove(pages);
  expect_attach_error("s", "pages of persisted sequence 's' are missing", options("s"));
}

TEST_F(SequencePersistFaultTest, NoEntryRamTierAndBadIds) {
  expect_attach_error("nothing", "no sequence is persisted under 'nothing'", options("nothing"));
  Engine engine(model_, eo_);
  Sequence seq(engine, options());
  engine.forward(seq, std::span(ids_.data(), 20), nullptr, false);
  EXPECT_THROW(seq.persist("../escape"), Error);
  EXPECT_THROW(seq.persist(""), Error);
  Engine ram(model_, {.n_threads = 1, .max_batch = 48});
  Sequence in_ram(ram, options());
  try {
    in_ram.persist("r");
    FAIL();
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("ram KV tier keeps nothing"), std::string::npos) << e.what();
  }
  Sequence contiguous(engine, SequenceOptions{.n_ctx = 64});
  EXPECT_THROW(contiguous.persist("c"), Error);
}

}  // namespace
}  // namespace flashmem
