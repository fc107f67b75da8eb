// The seed corpora of the file-reader fuzz targets (fuzz/corpus/{indexer,dump,lm_checkpoint,
// eval_results}/, docs/FUZZING.md) are files our writers make. This test checks that every
// committed seed still loads with today's readers (a format change must regenerate them), and
// writes them anew when FLASHMEM_WRITE_FUZZ_SEEDS names the fuzz/corpus directory.
#include <gtest/gtest.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>

#include "../common/cli_run.h"
#include "../common/lm_checkpoint.h"
#include "../common/synthetic_dump.h"
#include "eval/eval_report.h"
#include "eval/results_file.h"
#include "indexer/indexer_model.h"
#include "lm/checkpoint.h"
#include "train/dump_format.h"

namespace flashmem {
namespace {

namespace fs = std::filesystem;
using nlohmann::json;

const fs::path kCorpus = fs::path(FLASHMEM_TEST_DATA) / ".." / ".." / "fuzz" / "corpus";

std::vector<uint8_t> as_bytes(const std::string& s) { return {s.begin(), s.end()}; }

// name -> bytes of every seed, made by the writers.
std::vector<std::pair<std::string, std::vector<uint8_t>>> seeds() {
  std::vector<std::pair<std::string, std::vector<uint8_t>>> out;
  // Indexers: f16 with a key tower, f32 without (key_source backbone); a few KB each.
  RandomIndexerSpec a;
  a.layers = {3};
  a.hidden_dim = 16;
  a.q_lora_rank = 4;
  a.n_heads = 1;
  a.type = DType::F16;
  out.emplace_back("indexer/small_f16_wk.gguf", indexer_to_bytes(random_indexer_weights(a, 1)));
  RandomIndexerSpec b = a;
  b.layers = {2, 0};
  b.with_wk = false;
  b.type = DType::BF16;
  out.emplace_back("indexer/small_bf16_backbone.gguf", indexer_to_bytes(random_indexer_weights(b, 2)));
  // Dumps: two layers, one layer with longer rows.
  out.emplace_back("dump/two_layers.fmdump", dump_to_bytes(test::synthetic_dump({}, 1)));
  test::SyntheticDumpSpec one;
  one.layers = {0};
  one.n_tokens = 64;
  one.label_from = 44;
  one.hidden_dim = 4;
  out.emplace_back("dump/one_layer.fmdump", dump_to_bytes(test::synthetic_dump(one, 2)));
  // A train-lm checkpoint of the smallest shape the config allows.
  const lm::LmConfig tiny{.n_vocab = 4, .dim = 2, .n_layers = 1, .n_heads = 1, .n_kv_heads = 1, .ff_dim = 2,
                          .context_length = 8, .tied_embeddings = true};
  const lm::Checkpoint ck = test::patterned_checkpoint(tiny, 3, 9);
  out.emplace_back("lm_checkpoint/tiny.ckpt", lm::checkpoint_to_bytes(ck));
  // eval: a results.json of three sealed cells (full, window, recency) and a partial.json.
  eval::GridOptions o;
  o.lengths = {256};
  o.policies = {"full", "window", "recency"};
  o.budgets = {0.1};
  o.samples = 2;
  eval::RunIdentity id;
  id.model_name = "m.gguf";
  id.model_sha256 = std::string(64, 'b');
  json results = {{"version", 1}, {"command", "flashmem eval"}, {"model", {{"name", "m.gguf"}, {"path", "m.gguf"},
                  {"sha256", id.model_sha256}}}, {"indexer", nullptr}, {"cells", json::array()}};
  double accuracy = 1.0;
  for (const eval::CellPlan& p : eval::plan_grid(o)) {
    eval::CellResult c;
    c.plan = p;
    c.n = 2;
    c.accuracy = accuracy;
    c.answers_found = 2 * accuracy;
    c.answers_total = 2;
    c.resident_fraction_avg = p.policy == "full" ? 1.0 : 0.1;
    c.resident_fraction_steps = {static_cast<float>(c.resident_fraction_avg), 0.2f};
    results["cells"].push_back(eval::seal(eval::cell_to_json(c, eval::cell_config(p, o, id))));
    accuracy /= 2;
  }
  out.emplace_back("eval_results/results.json", as_bytes(results.dump(1) + "\n"));
  eval::SampleResult s;
  s.score = 1;
  s.answers = 1;
  s.answers_found = 1;
  s.resident_fraction_steps = {1.0f, 0.5f};
  const json partial = eval::partial_to_json(results["cells"][0]["config"], json::array({eval::sample_to_json(s)}));
  out.emplace_back("eval_results/partial.json", as_bytes(partial.dump() + "\n"));
  return out;
}

TEST(FuzzSeeds, WriteFuzzSeedsWhenAsked) {
  const char* dir = std::getenv("FLASHMEM_WRITE_FUZZ_SEEDS");
  if (dir == nullptr) GTEST_SKIP() << "set FLASHMEM_WRITE_FUZZ_SEEDS=fuzz/corpus to write the seeds";
  for (const auto& [name, bytes] : seeds()) {
    const fs::path path = fs::path(dir) / name;
    fs::create_directories(path.parent_path());
    std::ofstream f(path, std::ios::binary);
    f.write(reinterpret_cast<const char*>(bytes.data()), static_cast<std::streamsize>(bytes.size()));
  }
}

TEST(FuzzSeeds, CommittedSeedsLoadWithTodaysReaders) {
  int checked = 0;
  for (const auto& [name, made] : seeds()) {
    const fs::path path = kCorpus / name;
    ASSERT_TRUE(fs::exists(path)) << path << " missing: regenerate the seeds (docs/FUZZING.md)";
    const std::string text = test::slurp(path);
    const std::vector<uint8_t> bytes = as_bytes(text);
    EXPECT_EQ(bytes, made) << name << " differs from what the writer makes today: regenerate the seeds";
    const std::string dir = fs::path(name).parent_path().string();
    if (dir == "indexer") {
      EXPECT_NO_THROW(IndexerModel::from_bytes(bytes, name)) << name;
    } else if (dir == "dump") {
      EXPECT_NO_THROW(dump_from_bytes(bytes.data(), bytes.size(), name)) << name;
    } else if (dir == "lm_checkpoint") {
      EXPECT_NO_THROW(lm::checkpoint_from_bytes(bytes.data(), bytes.size(), name)) << name;
    }
    if (name == "eval_results/results.json") {
      const json r = eval::parse_results(text, name);
      EXPECT_EQ(eval::stored_cells(r).verified.size(), 3u);
      EXPECT_FALSE(eval::render_markdown(r).empty());
    }
    if (name == "eval_results/partial.json") {
      const json p = json::parse(text);
      EXPECT_EQ(eval::partial_samples(p, p.at("config")).size(), 1u);
    }
    ++checked;
  }
  EXPECT_EQ(checked, 7);
}

}  // namespace
}  // namespace flashmem
