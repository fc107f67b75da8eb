// `flashmem inspect`: text and JSON output on a fixture; a malformed file exits 1 with "error:".
#include <gtest/gtest.h>

#include <cstdio>
#include <filesystem>
#include <nlohmann/json.hpp>
#include <string>

#include "../common/cli_run.h"

namespace {

using flashmem::test::RunResult;

RunResult run(const std::string& args) { return flashmem::test::run_flashmem(args); }

const std::string kData = FLASHMEM_TEST_DATA;

TEST(InspectCli, PrintsMetadataTensorsAndTotals) {
  const RunResult r = run("inspect " + kData + "/models/stories260K.gguf");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_NE(r.out.find("version: 3"), std::string::npos);
  EXPECT_NE(r.out.find("alignment: 32"), std::string::npos);
  EXPECT_NE(r.out.find("general.architecture"), std::string::npos);
  EXPECT_NE(r.out.find("\"llama\""), std::string::npos);
  EXPECT_NE(r.out.find("[512 × string]   \"<unk>\", \"<s>\", \"</s>\""), std::string::npos);
  EXPECT_NE(r.out.find("token_embd.weight"), std::string::npos);
  EXPECT_NE(r.out.find("[64, 512]"), std::string::npos);
  EXPECT_NE(r.out.find("totals: 47 tensors"), std::string::npos);
}

TEST(InspectCli, JsonIsOneParsableObject) {
  const RunResult r = run("inspect --json " + kData + "/models/rand-llama-q8_0.gguf");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  const nlohmann::json j = nlohmann::json::parse(r.out);
  EXPECT_EQ(j["version"], 3);
  EXPECT_EQ(j["alignment"], 32);
  EXPECT_EQ(j["metadata"][0]["key"], "general.architecture");
  EXPECT_EQ(j["metadata"][0]["value"], "llama");
  EXPECT_EQ(j["tensors"].size(), 30u);
  EXPECT_EQ(j["tensors"][0]["name"], "token_embd.weight");
  EXPECT_EQ(j["tensors"][0]["type"], "q8_0");
  EXPECT_EQ(j["tensors"][0]["shape"], nlohmann::json::array({128, 512}));
  EXPECT_EQ(j["totals"]["tensors"], 30);
  bool saw_tokens = false;
  for (const auto& entry : j["metadata"]) {
    if (entry["key"] != "tokenizer.ggml.tokens") continue;
    saw_tokens = true;
    EXPECT_EQ(entry["type"], "array");
    EXPECT_EQ(entry["elem_type"], "string");
    EXPECT_EQ(entry["count"], 512);
  }
  EXPECT_TRUE(saw_tokens);
}

TEST(InspectCli, MalformedFileExitsOneWithErrorMessage) {
  const std::string path =
      kData + "/../malformed/gguf/string_len_u64max.gguf";
  const RunResult r = run("inspect " + path);
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_EQ(r.err.rfind("error: ", 0), 0u) << r.err;
  EXPECT_NE(r.err.find("string length"), std::string::npos) << r.err;
  EXPECT_TRUE(r.out.empty());
}

TEST(InspectCli, MissingFileExitsOne) {
  const RunResult r = run("inspect " + kData + "/no/such/file.gguf");
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_EQ(r.err.rfind("error: ", 0), 0u) << r.err;
}

}  // namespace
