// `flashmem eval` reuses only results that verify: a results.json cell edited by hand (one digit),
// a cell without a checksum and a partial.json whose checksum fails are recomputed, with a note
// on stderr; the reader's pieces (seal, stored_cells, partial_samples) on their own.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>

#include "../common/cli_run.h"
#include "eval/results_file.h"
#include "util/error.h"

namespace flashmem {
namespace {

namespace fs = std::filesystem;
using nlohmann::json;

const std::string kModel = std::string(FLASHMEM_TEST_DATA) + "/models/stories260K.gguf";

void write_text(const fs::path& path, const std::string& text) {
  std::ofstream f(path, std::ios::binary);
  f << text;
}

TEST(EvalResultsIntegrity, SealDetectsAnyEdit) {
  json cell = {{"accuracy", 0.25}, {"n", 4}, {"config", {{"seed", 3}, {"policy", "full"}}},
               {"resident_fraction_steps", {1.0, 0.5}}};
  const json sealed = eval::seal(cell);
  EXPECT_TRUE(eval::is_sealed(sealed));
  EXPECT_TRUE(eval::is_sealed(json::parse(sealed.dump(1))));  // survives the file round trip
  EXPECT_FALSE(eval::is_sealed(cell));                        // no checksum: not trusted
  json edited = sealed;
  edited["accuracy"] = 0.35;
  EXPECT_FALSE(eval::is_sealed(edited));
  edited = sealed;
  edited["config"]["seed"] = 4;
  EXPECT_FALSE(eval::is_sealed(edited));
  edited = sealed;
  edited["checksum"] = "xxh3:0000000000000000";
  EXPECT_FALSE(eval::is_sealed(edited));
  EXPECT_FALSE(eval::is_sealed(json::array()));

  const json results = {{"cells", {sealed, cell}}, {"other_cells", {edited}}};
  const eval::StoredCells stored = eval::stored_cells(results);
  EXPECT_EQ(stored.verified.size(), 1u);
  EXPECT_EQ(stored.unverified.size(), 2u);
  EXPECT_THROW(eval::parse_results("{\"cells\": 3}", "r.json"), Error);
  EXPECT_THROW(eval::parse_results("{\"cells\": [", "r.json"), Error);
}

TEST(EvalResultsIntegrity, AnEditedPartialFileIsNotUsed) {
  const json config = {{"seed", 1}};
  const json sample = {{"score", 1.0}, {"answers", 1}, {"answers_found", 1.0}, {"resident_fraction_avg", 1.0},
                       {"resident_fraction_peak", 1.0}, {"resident_kv_bytes_avg", 10}, {"resident_kv_bytes_peak", 10},
                       {"full_kv_bytes", 10}, {"attn_bytes_per_step", 10}, {"decode_tokens", 1},
                       {"decode_seconds", 0.1}, {"seconds", 0.1}, {"resident_fraction_steps", {1.0}}};
  json partial = eval::partial_to_json(config, json::array({sample}));
  std::string why;
  EXPECT_EQ(eval::partial_samples(partial, config, &why).size(), 1u);
  EXPECT_EQ(why, "");
  partial["samples"][0]["score"] = 0.0;
  EXPECT_TRUE(eval::partial_samples(partial, config, &why).empty());
  EXPECT_NE(why.find("checksum"), std::string::npos);
  EXPECT_TRUE(eval::partial_samples(partial, json{{"seed", 2}}, &why).empty());  // another cell's
  EXPECT_EQ(why, "");
}

TEST(EvalResultsIntegrity, AHandEditedCellIsRecomputed) {
  const fs::path dir = test::test_temp_path("fm_eval_integrity", "dir");
  fs::remove_all(dir);
  const std::string args = "eval -m " + kModel + " --suite niah_single --lengths 384 --policies full,window --samples 1"
                           " --seed 3 -t 1 --json --out " + dir.string();
  test::RunResult r = test::run_flashmem(args);
  ASSERT_EQ(r.exit_code, 0) << r.err;
  const std::string original = test::slurp(dir / "results.json");
  const json stored = json::parse(original);
  ASSERT_EQ(stored.at("cells").size(), 2u);
  for (const json& c : stored.at("cells")) EXPECT_TRUE(eval::is_sealed(c));
  // One digit of the first cell's n_samples-independent number changed by hand: "n": 1 -> 7.
  std::string edited = original;
  const size_t at = edited.find("\"n\": 1,");
  ASSERT_NE(at, std::string::npos);
  edited[at + 5] = '7';
  write_text(dir / "results.json", edited);
  r = test::run_flashmem(args);
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_NE(r.err.find("no valid checksum"), std::string::npos) << r.err;
  EXPECT_NE(r.err.find("recomputing"), std::string::npos) << r.err;
  EXPECT_NE(r.err.find("1 of 2 cells already in"), std::string::npos) << r.err;  // the other one verifies
  const json again = json::parse(test::slurp(dir / "results.json"));
  for (const json& c : again.at("cells")) {
    EXPECT_TRUE(eval::is_sealed(c));
    EXPECT_EQ(c.at("n"), 1);
  }
  // A cell with its checksum removed is not trusted either.
  json unsealed = again;
  unsealed["cells"][1].erase("checksum");
  write_text(dir / "results.json", unsealed.dump(1));
  r = test::run_flashmem(args);
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_NE(r.err.find("recomputing"), std::string::npos) << r.err;
  fs::remove_all(dir);
}

}  // namespace
}  // namespace flashmem
