// bench/depth.sh, the script behind issue 18's table (docs/BENCHMARKS.md), on the tiny test model:
// every row form (plain, a policy on disk, a fixed budget with lookahead) lands in the table, a
// row whose bench fails is shown as failed without stopping the run, and the reference row runs
// before and after the rows so that the table states how far the host's speed moved.
#include <gtest/gtest.h>

#include <filesystem>
#include <string>

#include "../common/cli_run.h"

namespace flashmem {
namespace {

using test::run_flashmem;
using test::run_shell;
using test::RunOptions;
using test::RunResult;

const std::string kData = FLASHMEM_TEST_DATA;
const std::string kModel = kData + "/models/stories260K.gguf";  // dim 64, 5 layers, 512 context
const std::string kScript = kData + "/../../bench/depth.sh";

TEST(DepthScript, EveryRowFormLandsInTheTableWithTheReferenceRow) {
  const std::filesystem::path dir = test::test_temp_path("depth_script", "dir");
  std::filesystem::create_directories(dir);
  const std::string indexer = (dir / "idx.gguf").string();
  ASSERT_EQ(run_flashmem("indexer make-random --layers 1,3 --dim 64 --rank 16 --heads 2 --seed 1 --out " + indexer)
                .exit_code,
            0);
  RunOptions options;
  options.timeout_seconds = 300;  // a handful of seconds on 2 cores; a hang fails the test
  const RunResult r = run_shell(
      "env BIN=" + std::string(FLASHMEM_BIN) + " THREADS=2 GEN=4 REPEAT=1 ROUNDS=2 DISK_DIR=" + dir.string() +
          " REFERENCE=64:random:none:ram:f16 bash " + kScript + " " + kModel + " " + indexer +
          " 64:prefill:none:ram:f16 128:prefill:lsa:disk:f16 128:random:lsa@128/p2:disk:f16 64:prefill:bogus:ram:f16",
      options);
  std::filesystem::remove_all(dir);
  ASSERT_EQ(r.exit_code, 0) << r.err;
  const std::string& out = r.out;
  EXPECT_NE(out.find("Reference row 64:random:none:ram:f16 (the host's speed over the run): decode "),
            std::string::npos)
      << out;
  EXPECT_NE(out.find("end/start "), std::string::npos) << out;
  EXPECT_NE(out.find("| context | history | policy | store | kv | kernels | decode tok/s (median) |"), std::string::npos)
      << out;
  EXPECT_NE(out.find("| 64 | real prefill | none | - | f16 | "), std::string::npos) << out;
  EXPECT_NE(out.find("| 128 | real prefill | lsa 10% | disk | f16 | "), std::string::npos) << out;
  EXPECT_NE(out.find("| 128 | synthetic (--fill random) | lsa 128 tok, prefetch 2 | disk | f16 | "),
            std::string::npos)
      << out;
  // The failing row is in the table as failed; the reference row still ran after it.
  EXPECT_NE(out.find("| 64 | prefill | bogus | ram | f16 | - | failed: bench "), std::string::npos) << out;
  // The stderr log names every row as it starts, the reference row twice.
  size_t reference_runs = 0;
  for (size_t at = r.err.find("64:random:none:ram:f16"); at != std::string::npos;
       at = r.err.find("64:random:none:ram:f16", at + 1))
    ++reference_runs;
  EXPECT_EQ(reference_runs, 2u) << r.err;
}

}  // namespace
}  // namespace flashmem
