// Regression guard for the LSA headline (docs/RESULTS.md): with the bundled model and indexer
// (models/needle-lm.gguf, models/needle-lm-indexer.gguf), policy lsa at a 10% resident budget
// answers at least 18 of 20 generated 2K-token niah tasks (10 niah_single + 10 niah_multikey).
// Geometry as `flashmem eval` uses it for its 1K-4K grid (8-token pages, sink 1 page, tail
// 2 pages, a selection every page = tau 8), which is the geometry the indexer was trained for.
// Runtime: ~15-40 s with -t 2 (20 prefills of 2,048 tokens through the 2-layer model plus the
// indexer's scoring every 8 decode steps).
#include <gtest/gtest.h>

#include <filesystem>
#include <string>

#include "../common/cli_run.h"

namespace flashmem::test {
namespace {

const std::string kModels = std::string(FLASHMEM_TEST_DATA) + "/../../models/";

TEST(NeedleLmLsaGuard, LsaAtTenPercentAnswersNinetyPercentOf2kTasks) {
  const std::string model = kModels + "needle-lm.gguf", indexer = kModels + "needle-lm-indexer.gguf";
  ASSERT_TRUE(std::filesystem::exists(model)) << model;
  ASSERT_TRUE(std::filesystem::exists(indexer)) << indexer;
  // Seed 20: samples mix_seed(20 + 2048, i), none of the indexer's training tasks
  // (1,000,000 + i) or of docs/RESULTS.md's grid (seed 0).
  const RunResult r = run_flashmem(
      "eval-tasks -m " + model + " --indexer " + indexer +
      " --policy lsa --budget 0.1 --page-tokens 8 --sink-pages 1 --recent-pages 2 --tau 8"
      " --families niah_single,niah_multikey --lengths 2048 --samples 10 --seed 20 -t 2");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  double solved_tasks = 0;
  for (const char* family : {"niah_single", "niah_multikey"}) {
    const std::optional<EvalTasksRow> row = eval_tasks_row(r.out, family);
    ASSERT_TRUE(row.has_value()) << r.out;
    ASSERT_EQ(row->samples, 10) << r.out;
    solved_tasks += row->solved * row->samples;  // solved = fraction of samples fully answered
  }
  EXPECT_GE(solved_tasks, 18.0 - 1e-9) << r.out;
}

}  // namespace
}  // namespace flashmem::test
