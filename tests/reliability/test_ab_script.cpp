// bench/ab.sh, the pairs procedure behind docs/BENCHMARKS.md's A-against-B figures, on the tiny
// test model: the order alternates from pair to pair, every pair prints its ratios, the summary
// gives their median and range; a side that fails stops the run with its command named, and a
// malformed call is refused with a usage line.
#include <gtest/gtest.h>

#include <string>

#include "../common/cli_run.h"

namespace flashmem {
namespace {

using test::run_shell;
using test::RunOptions;
using test::RunResult;

const std::string kData = FLASHMEM_TEST_DATA;
const std::string kModel = kData + "/models/stories260K.gguf";  // dim 64, 5 layers, 512 context
const std::string kScript = kData + "/../../bench/ab.sh";

std::string bench_command(const std::string& extra) {
  return std::string(FLASHMEM_BIN) + " bench -m " + kModel + " --context 64 --gen 4 --repeat 1 --threads 1" + extra;
}

RunResult run_ab(const std::string& args) {
  RunOptions options;
  options.timeout_seconds = 300;  // seconds on 2 cores; a hang fails the test
  return run_shell("bash " + kScript + " " + args, options);
}

TEST(AbScript, PairsAlternateAndTheSummaryGivesMedianAndRange) {
  const RunResult r = run_ab("3 -- " + bench_command("") + " -- " + bench_command(" --fill random"));
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_NE(r.out.find("| pair | order | A tok/s | B tok/s | tok/s B/A | weights ms B/A | attention ms B/A |"),
            std::string::npos)
      << r.out;
  EXPECT_NE(r.out.find("| 1 | AB | "), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("| 2 | BA | "), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("| 3 | AB | "), std::string::npos) << r.out;
  EXPECT_EQ(r.out.find("| 4 | "), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("3 pairs, B / A median (range): decode tok/s "), std::string::npos) << r.out;
}

TEST(AbScript, AFailingSideStopsTheRunAndIsNamed) {
  const RunResult r = run_ab("2 -- " + bench_command("") + " -- " + bench_command(" --policy bogus"));
  EXPECT_NE(r.exit_code, 0);
  EXPECT_NE(r.err.find("side B failed: "), std::string::npos) << r.err;
  EXPECT_EQ(r.out.find("pairs, B / A"), std::string::npos) << r.out;
}

TEST(AbScript, MalformedCallsAreRefusedWithUsage) {
  const std::string malformed[] = {"3 " + bench_command(""), "0 -- a b -- c d", "x -- a b -- c d",
                                   "3 -- " + bench_command("")};
  for (const std::string& args : malformed) {
    const RunResult r = run_ab(args);
    EXPECT_EQ(r.exit_code, 2) << args;
    EXPECT_FALSE(r.err.empty()) << args;
  }
}

}  // namespace
}  // namespace flashmem
