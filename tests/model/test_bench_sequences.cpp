// `flashmem bench --sequences N` runs N sequences on one engine and reports aggregate decode
// throughput with every field filled (the figures themselves are benchmarks, not checked here).
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include "../common/cli_run.h"
#include "../common/json_line.h"

namespace flashmem {
namespace {

using test::run_flashmem;

const std::string kModel = std::string(FLASHMEM_TEST_DATA) + "/models/stories260K.gguf";

TEST(BenchSequences, ReportsAggregateDecodeOfAllSequences) {
  for (const std::string policy : {"", " --policy recency:0.5 --page-tokens 16"}) {
    for (const std::string fill : {"prefill", "random"}) {
      const auto r = run_flashmem("bench -m " + kModel + " --sequences 3 --context 60 --gen 4 --repeat 2 -t 2 --json --fill " +
                                  fill + policy);
      ASSERT_EQ(r.exit_code, 0) << r.err;
      const nlohmann::json j = test::last_json_line(r.out);
      EXPECT_EQ(j["sequences"], 3);
      EXPECT_EQ(j["decode_tok_s_rounds"].size(), 2u);
      EXPECT_GT(j["decode_tok_s"].get<double>(), 0);
      EXPECT_NEAR(j["decode_tok_s_per_sequence"].get<double>() * 3, j["decode_tok_s"].get<double>(), 1e-6);
      EXPECT_GT(j["kv_reserved_bytes"].get<uint64_t>(), 0u);
      EXPECT_EQ(j["prefill_tok_s"].get<double>() > 0, fill == "prefill");
      EXPECT_NE(r.out.find(fill == "random" ? "synthetic KV" : "batched"), std::string::npos) << r.out;
    }
  }
}

TEST(BenchSequences, RefusesBadCounts) {
  for (const std::string n : {"0", "-2", "5000"}) {
    const auto r = run_flashmem("bench -m " + kModel + " --sequences " + n + " --context 8 --gen 1");
    EXPECT_NE(r.exit_code, 0) << n;
    EXPECT_NE(r.err.find("--sequences"), std::string::npos) << r.err;
  }
  const auto r = run_flashmem("bench -m " + kModel + " --sequences 2 --context 8 --gen 1 --policy oracle:0.5");
  EXPECT_NE(r.exit_code, 0);
  EXPECT_NE(r.err.find("oracle"), std::string::npos) << r.err;
}

}  // namespace
}  // namespace flashmem
