// `flashmem bench` reports every figure with its spread and the machine's load: the median, range
// and count of --repeat histories x --rounds decode rounds (the figures themselves are
// benchmarks, not checked here), and a prompt fed in parts gives the same tokens as one call.
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include "../common/cli_run.h"
#include "../common/json_line.h"

namespace flashmem {
namespace {

using test::run_flashmem;

const std::string kModel = std::string(FLASHMEM_TEST_DATA) + "/models/stories260K.gguf";

TEST(BenchSpread, ReportsMedianRangeAndCountOfEveryRound) {
  for (const std::string fill : {"prefill", "random"}) {
    // 2,500 tokens: more than one prefill part (8 chunks of 256), so the parts are exercised.
    const auto r = run_flashmem("bench -m " + kModel + " --context 2500 --gen 3 --repeat 2 --rounds 3 -t 2 --json --fill " +
                                fill + " --policy recency:0.5 --page-tokens 16");
    ASSERT_EQ(r.exit_code, 0) << r.err;
    const nlohmann::json j = test::last_json_line(r.out);
    EXPECT_EQ(j["rounds"], 3);
    const nlohmann::json& d = j["decode_spread"];
    EXPECT_EQ(d["n"], 6);  // 2 histories x 3 rounds
    EXPECT_LE(d["min"].get<double>(), d["median"].get<double>());
    EXPECT_LE(d["median"].get<double>(), d["max"].get<double>());
    EXPECT_EQ(d["median"].get<double>(), j["decode_tok_s"].get<double>());
    EXPECT_EQ(j["prefill_spread"]["n"], fill == "prefill" ? 2 : 0);
    EXPECT_GE(j["load_avg_start"].get<double>(), 0.0);
    EXPECT_NE(r.out.find("load average:"), std::string::npos) << r.out;
    EXPECT_NE(r.out.find(fill == "prefill" ? "median of 6, range" : "synthetic KV"), std::string::npos) << r.out;
  }
}

TEST(BenchSpread, RefusesBadRounds) {
  for (const std::string bad : {"--rounds 0", "--rounds -1", "--sequences 2 --rounds 2"}) {
    const auto r = run_flashmem("bench -m " + kModel + " --context 8 --gen 1 " + bad);
    EXPECT_NE(r.exit_code, 0) << bad;
    EXPECT_NE(r.err.find("--rounds"), std::string::npos) << r.err;
  }
}

}  // namespace
}  // namespace flashmem
