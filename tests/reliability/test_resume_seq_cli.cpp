// `flashmem run --save-seq ID` then `flashmem run --resume-seq ID` (issue 19, sequence attach):
// two processes, the second continuing the first's history from the slow tier (disk and Redis)
// without prefilling it again, print exactly the tokens of one process that runs both turns on
// one sequence; a wrong model, a damaged record and missing pages end in a clear error.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <sstream>

#include "data/task.h"
#include "data/word_vocab.h"
#include "engine/generate.h"
#include "flashmem/engine.h"
#include "flashmem/sequence.h"
#include "indexer/indexer_model.h"
#include "../common/cli_run.h"
#include "../common/redis_server.h"
#include "../common/temp_dir.h"

namespace flashmem {
namespace {

namespace fs = std::filesystem;
const std::string kModels = std::string(FLASHMEM_TEST_DATA) + "/../../models/";
constexpr int kNew = 6;  // tokens generated per turn

// A needle task of `length` tokens (turn 1) and a follow-up question (turn 2).
struct Turns {
  std::string first, second;
};

Turns write_turns(const fs::path& dir) {
  static const Tokenizer tokenizer{data::word_vocab_spec()};
  data::TaskSpec spec;
  spec.length = 1200;  // a few pages past the sink and tail at the default page size
  const data::TaskSample sample = data::generate_task(spec, 3, tokenizer);
  std::ofstream(dir / "turn1.txt") << sample.prompt;
  std::ofstream(dir / "turn2.txt") << " and again the value is";
  return {sample.prompt, " and again the value is"};
}

std::string run_args(const std::string& model, const std::string& store, const fs::path& prompt) {
  return "run -m " + model + " --indexer " + kModels + "needle-lm-indexer.gguf --policy lsa "
         "--budget 0.1 --kv-type f32 -t 1 --ids -n " + std::to_string(kNew) + " --kv-store " + store +
         " -f " + prompt.string();
}

std::vector<int32_t> parse_ids(const std::string& out) {
  std::istringstream in(out);
  std::vector<int32_t> ids;
  for (int32_t id = 0; in >> id;) ids.push_back(id);
  return ids;
}

// Both turns on one sequence in this process, as `run` sets it up (the reference): the tokens
// of each turn and the second prompt's length.
struct Reference {
  std::vector<int32_t> first, second;
  size_t second_prompt = 0;
};

Reference one_process(const std::string& store, const Turns& t) {
  Engine engine(Model::load(kModels + "needle-lm.gguf"), {.n_threads = 1, .kv_store = store});
  PagedKvOptions paged;
  paged.policy = parse_policy_spec("lsa");
  paged.budget = 0.1;
  paged.indexer = std::make_shared<const IndexerModel>(IndexerModel::load(kModels + "needle-lm-indexer.gguf"));
  Sequence seq(engine, {.n_ctx = engine.model().config().context_length, .kv_type = DType::F32, .paged = paged});
  Sampler sampler(SamplerOptions{});
  Reference ref;
  const Tokenizer& tokenizer = engine.tokenizer();
  const std::vector<int32_t> p1 = tokenizer.encode(t.first, true, false);
  const std::vector<int32_t> p2 = tokenizer.encode(t.second, false, false);
  ref.second_prompt = p2.size();
  auto is_end = [&](int32_t x) { return tokenizer.is_eog(x); };
  GenerationRequest r{.prompt = p1, .max_tokens = kNew, .is_end = is_end,
                      .on_token = [&](int32_t x) { ref.first.push_back(x); return true; }};
  r.feed_last = true;  // as run --save-seq does
  generate(engine, seq, sampler, r);
  r = {.prompt = p2, .max_tokens = kNew, .is_end = is_end,
       .on_token = [&](int32_t x) { ref.second.push_back(x); return true; }};
  generate(engine, seq, sampler, r);
  return ref;
}

void expect_two_processes_equal_one(const std::string& store, const fs::path& dir) {
  const Turns turns = write_turns(dir);
  const test::RunResult first = test::run_flashmem(run_args(kModels + "needle-lm.gguf", store, dir / "turn1.txt") + " --save-seq conv");
  ASSERT_EQ(0, first.exit_code) << first.err;
  const test::RunResult second =
      test::run_flashmem(run_args(kModels + "needle-lm.gguf", store, dir / "turn2.txt") + " --resume-seq conv --stats");
  ASSERT_EQ(0, second.exit_code) << second.err;
  EXPECT_NE(second.err.find("resumed sequence 'conv'"), std::string::npos) << second.err;
  const Reference ref = one_process(store.starts_with("disk:") ? "disk:" + (dir / "ref").string() : store, turns);
  EXPECT_NE(second.err.find("prompt: " + std::to_string(ref.second_prompt) + " tokens"), std::string::npos)
      << "only the new prompt is prefilled: " << second.err;
  EXPECT_EQ(parse_ids(first.out), ref.first);
  EXPECT_EQ(parse_ids(second.out), ref.second);
  EXPECT_EQ(ref.first.size(), static_cast<size_t>(kNew));
}

TEST(ResumeSeqCli, TwoProcessesOnDiskEqualOne) {
  const fs::path dir = test::fresh_dir("resume_seq_disk");
  fs::create_directories(dir / "kv");
  fs::create_directories(dir / "ref");
  expect_two_processes_equal_one("disk:" + (dir / "kv").string(), dir);
}

TEST(ResumeSeqCli, TwoProcessesOnRedisEqualOne) {
  FLASHMEM_SKIP_WITHOUT_REDIS();
  test::RedisServer server;
  const fs::path dir = test::fresh_dir("resume_seq_redis");
  expect_two_processes_equal_one(server.url(), dir);
}

class ResumeSeqFaults : public ::testing::Test {
 protected:
  void SetUp() override {
    fs::create_directories(dir_ / "kv");
    write_turns(dir_);
    const test::RunResult r = test::run_flashmem(run_args(kModels + "needle-lm.gguf", store_, dir_ / "turn1.txt") + " --save-seq s");
    ASSERT_EQ(0, r.exit_code) << r.err;
  }
  void expect_error(const std::string& model, const std::string& needle) {
    const test::RunResult r = test::run_flashmem(run_args(model, store_, dir_ / "turn2.txt") + " --resume-seq s");
    EXPECT_EQ(1, r.exit_code) << r.err;
    EXPECT_NE(r.err.find(needle), std::string::npos) << r.err;
    EXPECT_TRUE(r.out.empty()) << r.out;
  }
  fs::path file_with(const std::string& extension) const {
    for (const auto& e : fs::directory_iterator(dir_ / "kv"))
      if (e.path().extension() == extension) return e.path();
    return {};
  }
  fs::path dir_ = test::fresh_dir("resume_seq_faults");
  std::string store_ = "disk:" + (dir_ / "kv").string();
};

TEST_F(ResumeSeqFaults, AnotherModelIsRefused) {
  // The same architecture and shapes as needle-lm are not enough: its weights differ.
  const fs::path other = dir_ / "other.gguf";
  fs::copy_file(kModels + "needle-lm.gguf", other);
  {
    std::fstream f(other, std::ios::in | std::ios::out | std::ios::binary);
    f.seekp(-64, std::ios::end);  // inside the last tensor's data
    f.put('\x7f');
  }
  expect_error(other.string(), "error: persisted sequence 's' was written by another model");
}

TEST_F(ResumeSeqFaults, DamagedRecordIsRefused) {
  const fs::path record = file_with(".kvseq");
  ASSERT_FALSE(record.empty());
  fs::resize_file(record, fs::file_size(record) - 9);
  expect_error(kModels + "needle-lm.gguf", "error: the record of persisted sequence 's' is");
}

TEST_F(ResumeSeqFaults, MissingPagesAreRefused) {
  const fs::path pages = file_with(".kvpages");
  ASSERT_FALSE(pages.empty());
  fs::remove(pages);
  expect_error(kModels + "needle-lm.gguf", "error: the pages of persisted sequence 's' are missing");
}

TEST_F(ResumeSeqFaults, UnknownIdIsRefused) {
  const test::RunResult r = test::run_flashmem(run_args(kModels + "needle-lm.gguf", store_, dir_ / "turn2.txt") + " --resume-seq nope");
  EXPECT_EQ(1, r.exit_code);
  EXPECT_NE(r.err.find("no sequence is persisted under 'nope'"), std::string::npos) << r.err;
}

}  // namespace
}  // namespace flashmem
