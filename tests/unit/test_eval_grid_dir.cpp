// The library side of `flashmem eval` and `eval-tasks` without a model: the scored part of a
// sample, the output directory (created, locked, its earlier results read) and the --json summary.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>

#include "../common/temp_dir.h"
#include "eval/cell.h"
#include "eval/grid_dir.h"
#include "util/error.h"

namespace flashmem::eval {
namespace {

namespace fs = std::filesystem;
using nlohmann::json;

TEST(EvalCell, ScoredSampleCountsAnswersFound) {
  const SampleResult r = scored_sample({"12345", "67890"}, "the numbers are 12345 and 11111");
  EXPECT_DOUBLE_EQ(r.score, 0.5);
  EXPECT_EQ(r.answers, 2);
  EXPECT_DOUBLE_EQ(r.answers_found, 1);
  EXPECT_EQ(r.decode_tokens, 0);  // left for the caller
  const SampleResult all = scored_sample({"12345"}, "12345");
  EXPECT_DOUBLE_EQ(all.score, 1.0);
}

TEST(EvalCell, EvalTasksCellsSummariseLikeGridCells) {
  // eval-tasks' cells: family and length only, score = mean, solved = fraction with every answer.
  CellPlan plan;
  plan.family = data::TaskFamily::kVt;
  plan.length = 300;
  const CellResult c = summarize_cell(plan, {scored_sample({"a1", "b2"}, "a1 b2"), scored_sample({"a1", "b2"}, "a1"),
                                             scored_sample({"c3"}, "nothing")});
  EXPECT_EQ(c.plan.family, data::TaskFamily::kVt);
  EXPECT_EQ(c.plan.length, 300);
  EXPECT_EQ(c.n, 3);
  EXPECT_DOUBLE_EQ(c.accuracy, (1.0 + 0.5 + 0.0) / 3);
  EXPECT_DOUBLE_EQ(c.solved, 1.0 / 3);
  EXPECT_DOUBLE_EQ(c.answers_found, 3);
  EXPECT_DOUBLE_EQ(c.answers_total, 5);
}

TEST(EvalGridDir, CreatesLocksAndReadsTheEarlierResults) {
  const fs::path dir = test::fresh_dir("grid_dir") / "out";
  {
    GridDir d = open_grid_dir(dir.string());
    EXPECT_TRUE(fs::is_directory(dir));
    EXPECT_TRUE(d.previous.empty());
    EXPECT_THROW(open_grid_dir(dir.string()), Error);  // a second writer stops at once
  }
  std::ofstream(dir / "results.json") << json{{"version", 1}, {"cells", json::array()}}.dump();
  const GridDir again = open_grid_dir(dir.string());  // the first lock went with its GridDir
  EXPECT_EQ(again.previous.at("version"), 1);
  std::ofstream(dir / "not_a_dir") << "x";
  EXPECT_THROW(open_grid_dir((dir / "not_a_dir").string()), Error);
}

TEST(EvalGridDir, JsonSummaryDropsTheBulkyFieldsAndSaysWhatWasResumed) {
  GridRun run;
  run.cells = {json{{"accuracy", 1.0}, {"config", {{"seed", 0}}}, {"resident_fraction_steps", {1.0}},
                    {"checksum", "xxh3:0"}},
               json{{"accuracy", 0.5}}};
  run.resumed = {true, false};
  const json s = grid_cells_summary(run);
  ASSERT_EQ(s.at("cells").size(), 2u);
  EXPECT_EQ(s["cells"][0], (json{{"accuracy", 1.0}, {"resumed", true}}));
  EXPECT_EQ(s["cells"][1], (json{{"accuracy", 0.5}, {"resumed", false}}));
}

}  // namespace
}  // namespace flashmem::eval
