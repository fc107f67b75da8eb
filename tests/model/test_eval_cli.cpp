// `flashmem eval` end to end on the stories260K fixture: a tiny grid (one family, one length,
// every policy but lsa, one budget, two samples) checking the --json shape, the files written to
// --out (results.json, results.md, well-formed SVGs), that full keeps 100% of the KV resident,
// that a rerun resumes every cell, and that bad flags exit 1 with "error:" (no abort).
#include <gtest/gtest.h>

#include <cstdio>
#include <filesystem>
#include <nlohmann/json.hpp>
#include <string>

#include "../common/cli_run.h"
#include "../common/json_line.h"
#include "../common/xml_check.h"
#include "eval/results_file.h"
#include "indexer/indexer_model.h"

namespace {

namespace fs = std::filesystem;
using nlohmann::json;

using flashmem::test::RunResult;
using flashmem::test::slurp;

fs::path temp_path(const std::string& what) { return flashmem::test::test_temp_path("flashmem_eval", what); }

RunResult run(const std::string& args) { return flashmem::test::run_flashmem("eval " + args); }

const std::string kModel = std::string(FLASHMEM_TEST_DATA) + "/models/stories260K.gguf";

TEST(EvalCli, TinyGridWritesReportsAndResumes) {
  const fs::path dir = temp_path("dir");
  fs::remove_all(dir);
  const std::string args = "-m " + kModel +
                           " --suite niah_single --lengths 384 --policies full,window,recency,random,quest,oracle"
                           " --budgets 0.25 --samples 2 --seed 3 -t 1 --json --out " + dir.string();
  const RunResult first = run(args);
  ASSERT_EQ(first.exit_code, 0) << first.err;
  const json j = flashmem::test::last_json_line(first.out);
  ASSERT_TRUE(j.is_object());
  ASSERT_EQ(j.size(), 1u);
  const json& cells = j.at("cells");
  ASSERT_EQ(cells.size(), 6u);  // full, window, then four policies at one budget
  for (const json& c : cells) {
    for (const char* key : {"family", "length", "policy", "budget", "n", "accuracy", "ci_low", "ci_high",
                            "resident_fraction_avg", "resident_fraction_peak", "resident_kv_bytes_avg",
                            "resident_kv_bytes_peak", "attn_bytes_per_step", "decode_tok_s", "page_tokens"})
      EXPECT_TRUE(c.contains(key)) << key;
    EXPECT_EQ(c.at("family"), "niah_single");
    EXPECT_EQ(c.at("length"), 384);
    EXPECT_EQ(c.at("n"), 2);
    EXPECT_EQ(c.at("page_tokens"), 4);  // auto: 8-token pages would leave no chosen page at 10% of 384
    EXPECT_FALSE(c.at("resumed").get<bool>());
    const double acc = c.at("accuracy");
    EXPECT_GE(acc, 0.0);
    EXPECT_LE(acc, 1.0);
    EXPECT_LE(c.at("ci_low").get<double>(), acc);
    EXPECT_GE(c.at("ci_high").get<double>(), acc);
    EXPECT_GT(c.at("resident_kv_bytes_avg").get<double>(), 0.0);
    EXPECT_GT(c.at("decode_tok_s").get<double>(), 0.0);
  }
  EXPECT_EQ(cells[0].at("policy"), "full");
  EXPECT_TRUE(cells[0].at("budget").is_null());
  EXPECT_DOUBLE_EQ(cells[0].at("resident_fraction_avg").get<double>(), 1.0);
  EXPECT_EQ(cells[1].at("policy"), "window");
  EXPECT_LT(cells[1].at("resident_fraction_avg").get<double>(), 0.25);
  for (size_t i = 2; i < cells.size(); ++i) {
    EXPECT_EQ(cells[i].at("budget"), 0.25);
    // Budgeted policies stay near their budget (whole pages; the open page counts).
    EXPECT_LT(cells[i].at("resident_fraction_avg").get<double>(), 0.40) << cells[i].at("policy");
  }

  // Files.
  const json stored = json::parse(slurp(dir / "results.json"));
  EXPECT_EQ(stored.at("cells").size(), 6u);
  EXPECT_NE(stored.at("command").get<std::string>().find("--budgets 0.25"), std::string::npos);
  EXPECT_EQ(stored.at("model").at("sha256").get<std::string>().size(), 64u);
  const std::string md = slurp(dir / "results.md");
  EXPECT_NE(md.find("| family | length | full | window | recency@0.25 | random@0.25 | quest@0.25 | oracle@0.25 |"),
            std::string::npos) << md;
  for (const char* name : {"accuracy_niah_single.svg", "resident_steps.svg"}) {
    const std::string svg = slurp(dir / name);
    ASSERT_FALSE(svg.empty()) << name;
    EXPECT_EQ(flashmem::test::xml_problem(svg), "") << name;
  }

  // Rerun: every cell comes from results.json, numbers unchanged.
  const RunResult second = run(args);
  ASSERT_EQ(second.exit_code, 0) << second.err;
  EXPECT_NE(second.err.find("6 of 6 cells already in"), std::string::npos) << second.err;
  const json again = flashmem::test::last_json_line(second.out);
  ASSERT_EQ(again.at("cells").size(), 6u);
  for (size_t i = 0; i < 6; ++i) {
    EXPECT_TRUE(again["cells"][i].at("resumed").get<bool>());
    EXPECT_EQ(again["cells"][i].at("accuracy"), cells[i].at("accuracy"));
  }

  // A different grid in the same DIR: full is reused, window is kept aside, not lost.
  const RunResult third = run("-m " + kModel + " --suite niah_single --lengths 384 --policies full --samples 2"
                              " --seed 3 -t 1 --json --out " + dir.string());
  ASSERT_EQ(third.exit_code, 0) << third.err;
  EXPECT_NE(third.err.find("1 of 1 cells already in"), std::string::npos) << third.err;
  const json narrowed = json::parse(slurp(dir / "results.json"));
  EXPECT_EQ(narrowed.at("cells").size(), 1u);
  EXPECT_EQ(narrowed.at("other_cells").size(), 5u);
  // ... and the full grid again finds all six.
  const RunResult fourth = run(args);
  ASSERT_EQ(fourth.exit_code, 0) << fourth.err;
  EXPECT_NE(fourth.err.find("6 of 6 cells already in"), std::string::npos) << fourth.err;
  EXPECT_FALSE(json::parse(slurp(dir / "results.json")).contains("other_cells"));
  fs::remove_all(dir);
}

TEST(EvalCli, ResumesACellFromItsPartialSamples) {
  // An interrupted cell leaves DIR/partial.json with its finished samples; a rerun uses them.
  // Stand-in for an interruption: a partial file whose one sample is solved (stories260K solves
  // nothing), so the cell's accuracy shows whether it was used.
  const fs::path dir = temp_path("dir");
  fs::remove_all(dir);
  const std::string args = "-m " + kModel + " --suite niah_single --lengths 384 --policies full --samples 2 -t 1 --json --out " +
                           dir.string();
  const RunResult first = run(args);
  ASSERT_EQ(first.exit_code, 0) << first.err;
  EXPECT_FALSE(fs::exists(dir / "partial.json"));  // removed once the cell is complete
  const json stored = json::parse(slurp(dir / "results.json"));
  const json sample = {{"score", 1.0}, {"answers", 1}, {"answers_found", 1.0}, {"resident_fraction_avg", 1.0},
                       {"resident_fraction_peak", 1.0}, {"resident_kv_bytes_avg", 1000}, {"resident_kv_bytes_peak", 1000},
                       {"full_kv_bytes", 1000}, {"attn_bytes_per_step", 1000}, {"decode_tokens", 4},
                       {"decode_seconds", 0.01}, {"seconds", 0.1}, {"resident_fraction_steps", {1.0, 1.0}}};
  // Sealed as eval writes it (eval/results_file.h): an unsealed partial file is not trusted.
  const json partial = flashmem::eval::partial_to_json(stored.at("cells")[0].at("config"), json::array({sample}));
  fs::remove(dir / "results.json");
  std::FILE* f = std::fopen((dir / "partial.json").c_str(), "wb");
  ASSERT_NE(f, nullptr);
  const std::string text = partial.dump();
  std::fwrite(text.data(), 1, text.size(), f);
  std::fclose(f);
  const RunResult second = run(args);
  ASSERT_EQ(second.exit_code, 0) << second.err;
  EXPECT_NE(second.err.find("1 of 2 samples already in"), std::string::npos) << second.err;
  const json cell = flashmem::test::last_json_line(second.out).at("cells")[0];
  EXPECT_DOUBLE_EQ(cell.at("accuracy").get<double>(), 0.5);
  EXPECT_EQ(cell.at("n"), 2);
  EXPECT_FALSE(fs::exists(dir / "partial.json"));
  fs::remove_all(dir);
}

TEST(EvalCli, LsaRunsWithAnIndexerAndRecordsIt) {
  // A random indexer for stories260K (dim 64): accuracy means nothing, the path must work.
  const fs::path dir = temp_path("dir"), indexer = temp_path("indexer.gguf");
  fs::remove_all(dir);
  flashmem::RandomIndexerSpec spec;
  spec.layers = {1, 3};
  spec.hidden_dim = 64;
  spec.q_lora_rank = 16;
  spec.n_heads = 2;
  flashmem::write_indexer(indexer.string(), flashmem::random_indexer_weights(spec, 5));
  const RunResult r = run("-m " + kModel + " --indexer " + indexer.string() +
                          " --suite niah_single --lengths 384 --policies full,lsa --budgets 0.1,0.25"
                          " --samples 1 -t 1 --json --out " + dir.string());
  ASSERT_EQ(r.exit_code, 0) << r.err;
  const json cells = flashmem::test::last_json_line(r.out).at("cells");
  ASSERT_EQ(cells.size(), 3u);
  EXPECT_EQ(cells[1].at("policy"), "lsa");
  EXPECT_EQ(cells[1].at("budget"), 0.1);
  EXPECT_LT(cells[1].at("resident_fraction_avg").get<double>(), cells[2].at("resident_fraction_avg").get<double>());
  const json stored = json::parse(slurp(dir / "results.json"));
  EXPECT_EQ(stored.at("indexer").at("sha256").get<std::string>().size(), 64u);
  EXPECT_EQ(stored.at("cells")[1].at("config").at("indexer_sha256"), stored.at("indexer").at("sha256"));
  fs::remove_all(dir);
  fs::remove(indexer);
}

TEST(EvalCli, BadFlagsExitWithAnError) {
  const fs::path dir = temp_path("dir");
  const std::string base = "-m " + kModel + " --out " + dir.string() + " ";
  const std::pair<std::string, std::string> cases[] = {
      {"--policies full,h2o", "unknown policy 'h2o'"},
      {"--suite niah", "unknown task family 'niah'"},
      {"--budgets 0.1,1.5", "--budgets"},
      {"--budgets 0", "--budgets"},
      {"--lengths 32", "--lengths"},
      {"--samples 0", "--samples"},
      {"--policies lsa", "--indexer"},
      {"--indexer x.gguf --policies full", "--indexer is only used by policy lsa"},
      {"--value digits", "--value"},
      {"--kv-type q4", "--kv-type"},
      {"--threads -1", "--threads"},
  };
  for (const auto& [flags, expected] : cases) {
    const RunResult r = run(base + flags);
    EXPECT_EQ(r.exit_code, 1) << flags;
    EXPECT_EQ(r.err.rfind("error:", 0), 0u) << flags << ": " << r.err;
    EXPECT_NE(r.err.find(expected), std::string::npos) << flags << ": " << r.err;
  }
  fs::remove_all(dir);
}

}  // namespace
