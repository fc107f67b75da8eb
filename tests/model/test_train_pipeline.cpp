// dump -> train-indexer -> eval-indexer -> run --policy lsa through the CLI, on a random-weight
// model and on the random qwen2 fixture. train-indexer and eval-indexer run with the backbone
// file deleted: they read dumps only.
#include <gtest/gtest.h>

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>
#include <string>

#include "../common/json_line.h"

#include "indexer/indexer_model.h"
#include "train/dump_format.h"

namespace flashmem {
namespace {

namespace fs = std::filesystem;
const std::string kBin = FLASHMEM_BIN;
const std::string kData = FLASHMEM_TEST_DATA;

struct Result {
  int status = -1;
  std::string out, err;
};

Result sh(const std::string& args, const fs::path& dir) {
  const std::string err_path = (dir / "stderr.txt").string();
  const std::string cmd = kBin + " " + args + " 2>" + err_path;
  Result r;
  FILE* p = popen(cmd.c_str(), "r");
  char buf[4096];
  size_t n;
  while ((n = fread(buf, 1, sizeof(buf), p)) > 0) r.out.append(buf, n);
  r.status = pclose(p);
  std::ifstream e(err_path);
  std::stringstream ss;
  ss << e.rdbuf();
  r.err = ss.str();
  return r;
}

class TrainPipeline : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::temp_directory_path() / ("flashmem_train_pipeline_" + std::to_string(::getpid()));
    fs::remove_all(dir_);
    fs::create_directories(dir_);
  }
  void TearDown() override { fs::remove_all(dir_); }
  fs::path dir_;
};

TEST_F(TrainPipeline, RandomModelEndToEndWithoutBackbone) {
  const std::string model = (dir_ / "model.gguf").string(), dumps = (dir_ / "dumps").string();
  const std::string make = "dev make-random-model --dim 64 --layers 3 --heads 4 --kv-heads 2 --ff 128 "
                           "--vocab 300 --context 256 --seed 5 --out " + model;
  ASSERT_EQ(sh(make, dir_).status, 0);
  Result r = sh("dump -m " + model + " --corpus generate:6 --out " + dumps +
                " --layers 0,1,2 --max-tokens 160 --label-from 32 -t 2 --json", dir_);
  ASSERT_EQ(r.status, 0) << r.err;
  nlohmann::json j = test::last_json_line(r.out);
  EXPECT_EQ(j["written"], 6);
  EXPECT_GT(j["tokens_per_second"].get<double>(), 0.0);
  const DumpDocument doc = read_dump(dumps + "/doc-000000.fmdump");
  EXPECT_EQ(doc.meta.n_tokens, 160);
  EXPECT_EQ(doc.n_rows(), 160 - 32);
  EXPECT_EQ(doc.meta.min_layers, 3);
  EXPECT_GT(doc.label_indices.size(), 0u);
  // Resumable: a second run writes nothing.
  r = sh("dump -m " + model + " --corpus generate:6 --out " + dumps + " --layers 0,1,2 --max-tokens 160 "
         "--label-from 32 -t 2 --json", dir_);
  ASSERT_EQ(r.status, 0) << r.err;
  EXPECT_EQ(test::last_json_line(r.out)["skipped"], 6);

  fs::remove(model);  // no backbone from here on
  const std::string indexer = (dir_ / "indexer.gguf").string();
  r = sh("train-indexer --data " + dumps + " --out " + indexer + " --samples 600 --batch 32 --patience 100 --val-fraction 0.34 "
         "--sink-tokens 16 --tail-tokens 32 -t 2 --json", dir_);
  ASSERT_EQ(r.status, 0) << r.err;
  j = test::last_json_line(r.out);
  EXPECT_EQ(j["samples"], 600);
  EXPECT_GT(j["samples_per_second"].get<double>(), 0.0);
  EXPECT_EQ(j["val_docs"], 2);
  const IndexerModel loaded = IndexerModel::load(indexer);
  EXPECT_EQ(loaded.config().layers, (std::vector<int32_t>{0, 1, 2}));

  r = sh("eval-indexer --indexer " + indexer + " --data " + dumps + " --sink-tokens 16 --tail-tokens 32 --budget 0.2 --json", dir_);
  ASSERT_EQ(r.status, 0) << r.err;
  j = test::last_json_line(r.out);
  for (const char* key : {"budget", "precision", "recall", "f1", "kept_fraction"}) EXPECT_TRUE(j.contains(key)) << key;
  for (const char* key : {"lsa", "recency", "random"}) {
    const double v = j["recall_at_budget"][key].get<double>();
    EXPECT_GE(v, 0.0);
    EXPECT_LE(v, 1.0);
  }
  EXPECT_DOUBLE_EQ(j["budget"].get<double>(), 0.2);

  // The same model again (same seed -> same file) runs with the trained indexer.
  ASSERT_EQ(sh(make, dir_).status, 0);
  r = sh("run -m " + model + " -p hello -n 40 --policy lsa --indexer " + indexer + " --page-tokens 16 --budget 0.5", dir_);
  EXPECT_EQ(r.status, 0) << r.err;

  // Flags are validated.
  r = sh("train-indexer --data " + dumps + " --out " + indexer + " --loss hinge", dir_);
  EXPECT_NE(r.status, 0);
  EXPECT_NE(r.err.find("error:"), std::string::npos) << r.err;
  r = sh("dump -m " + model + " --corpus generate:1 --out " + dumps + " --layers 0,7", dir_);
  EXPECT_NE(r.status, 0);
  EXPECT_NE(r.err.find("error:"), std::string::npos) << r.err;
  r = sh("eval-indexer --indexer " + indexer + " --data " + dumps + " --budget 0", dir_);
  EXPECT_NE(r.status, 0);
  EXPECT_NE(r.err.find("error:"), std::string::npos) << r.err;
}

TEST_F(TrainPipeline, TeacherForcedJsonlOnQwen2Fixture) {
  const std::string model = kData + "/models/rand-qwen2-f32.gguf", dumps = (dir_ / "dumps").string();
  const std::string corpus = (dir_ / "corpus.jsonl").string();
  {
    std::ofstream f(corpus);
    for (int i = 0; i < 3; ++i)
      f << R"({"prompt": "Once upon a time )" << i << R"(", "continuation": ")" << std::string(200, 'a' + i) << "\"}\n";
    f << R"({"messages": [{"role": "user", "content": "hi there"}, {"role": "assistant", "content": "hello, how are you doing today? I am fine."}]})" << "\n";
  }
  Result r = sh("dump -m " + model + " --corpus " + corpus + " --out " + dumps +
                " --layers 0,2 --max-tokens 128 --label-from 8 -t 2 --json", dir_);
  ASSERT_EQ(r.status, 0) << r.err;
  EXPECT_EQ(test::last_json_line(r.out)["written"], 4);
  const DumpDocument doc = read_dump(dumps + "/doc-000000.fmdump");
  EXPECT_EQ(doc.meta.min_layers, 3);  // 3 layers in the fixture
  EXPECT_EQ(doc.meta.layers, (std::vector<int32_t>{0, 2}));

  // Training and evaluation run on dumps of any backbone the engine runs.
  const std::string indexer = (dir_ / "qwen2-indexer.gguf").string();
  r = sh("train-indexer --data " + dumps + " --out " + indexer + " --samples 200 --batch 16 --val-fraction 0.5 "
         "--sink-tokens 8 --tail-tokens 16 -t 2 --json", dir_);
  ASSERT_EQ(r.status, 0) << r.err;
  r = sh("eval-indexer --indexer " + indexer + " --data " + dumps + " --sink-tokens 8 --tail-tokens 16 --json", dir_);
  ASSERT_EQ(r.status, 0) << r.err;
  EXPECT_GT(test::last_json_line(r.out)["samples"].get<int64_t>(), 0);

  std::ofstream(dir_ / "bad.jsonl") << "{\"prompt\": 3}\n";
  r = sh("dump -m " + model + " --corpus " + (dir_ / "bad.jsonl").string() + " --out " + dumps + " --layers 0", dir_);
  EXPECT_NE(r.status, 0);
  EXPECT_NE(r.err.find("line 1"), std::string::npos) << r.err;
}

}  // namespace
}  // namespace flashmem
