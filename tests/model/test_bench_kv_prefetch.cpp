// Where the decode attention kernel fetches K and V ahead (model/attention.h
// attention_fetch_level): `flashmem bench` reports it, FLASHMEM_KV_PREFETCH=l1|l2 sets it, and
// another value is named on stderr and leaves the processor's choice. The decoded tokens do not
// depend on it (a fetch is a hint: no value changes).
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include "../common/cli_run.h"
#include "../common/json_line.h"

namespace flashmem {
namespace {

const std::string kModel = std::string(FLASHMEM_TEST_DATA) + "/models/stories260K.gguf";
const std::string kBench = "bench -m " + kModel + " --context 300 --gen 8 --repeat 1 -t 2 --json";

nlohmann::json bench_with(const std::string& env, std::string* err = nullptr) {
  const auto r = test::run_shell(env + " " + FLASHMEM_BIN + " " + kBench);
  EXPECT_EQ(r.exit_code, 0) << r.err;
  if (err != nullptr) *err = r.err;
  return test::last_json_line(r.out);
}

TEST(BenchKvPrefetch, TheOverrideSetsTheLevelAndChangesNoToken) {
  const nlohmann::json chosen = bench_with("env -u FLASHMEM_KV_PREFETCH");
  const std::string level = chosen["kv_prefetch"];
  if (level == "none") GTEST_SKIP() << "scalar build: no fetches ahead";
  ASSERT_TRUE(level == "l1" || level == "l2") << level;
  for (const std::string forced : {"l1", "l2"}) {
    const nlohmann::json j = bench_with("FLASHMEM_KV_PREFETCH=" + forced);
    EXPECT_EQ(j["kv_prefetch"], forced);
    EXPECT_EQ(j["decoded_digest"], chosen["decoded_digest"]) << forced;
  }
  std::string err;
  const nlohmann::json bad = bench_with("FLASHMEM_KV_PREFETCH=L3", &err);
  EXPECT_EQ(bad["kv_prefetch"], level);
  EXPECT_NE(err.find("FLASHMEM_KV_PREFETCH='L3' is neither l1 nor l2"), std::string::npos) << err;
}

}  // namespace
}  // namespace flashmem
