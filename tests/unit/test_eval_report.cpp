// The evaluation grid's pure parts: Wilson interval, SVG writer, page-size choice, grid plan,
// flag validation, resume keys and the markdown report (no model needed).
#include <gtest/gtest.h>

#include <cmath>

#include "../common/xml_check.h"
#include "eval/eval_grid.h"
#include "eval/eval_report.h"
#include "eval/svg_plot.h"
#include "eval/wilson.h"
#include "util/error.h"

namespace flashmem::eval {
namespace {

using nlohmann::json;

TEST(Wilson, KnownValues) {
  // Reference values: Wilson (1927) score interval, z = 1.96 (e.g. statsmodels
  // proportion_confint(method="wilson")).
  Interval half = wilson_interval(5, 10);
  EXPECT_NEAR(half.low, 0.23659, 1e-4);
  EXPECT_NEAR(half.high, 0.76341, 1e-4);
  Interval none = wilson_interval(0, 10);
  EXPECT_DOUBLE_EQ(none.low, 0.0);
  EXPECT_NEAR(none.high, 0.27754, 1e-4);
  Interval all = wilson_interval(10, 10);
  EXPECT_NEAR(all.low, 0.72246, 1e-4);
  EXPECT_DOUBLE_EQ(all.high, 1.0);
  Interval big = wilson_interval(80, 100);
  EXPECT_NEAR(big.low, 0.71117, 1e-4);
  EXPECT_NEAR(big.high, 0.86663, 1e-4);
}

TEST(Wilson, DegenerateInputsStayInsideTheUnitInterval) {
  const Interval empty = wilson_interval(0, 0);
  EXPECT_EQ(empty.low, 0.0);
  EXPECT_EQ(empty.high, 1.0);
  const Interval clamped = wilson_interval(12, 10);
  EXPECT_EQ(clamped.high, 1.0);
  for (int n = 1; n <= 30; ++n)
    for (int k = 0; k <= n; ++k) {
      const Interval i = wilson_interval(k, n);
      EXPECT_LE(i.low, static_cast<double>(k) / n + 1e-12);
      EXPECT_GE(i.high, static_cast<double>(k) / n - 1e-12);
      EXPECT_GE(i.low, 0.0);
      EXPECT_LE(i.high, 1.0);
    }
}

TEST(SvgPlot, WellFormedWithEscapedTextAndOneLinePerSeries) {
  Plot p;
  p.title = "a < b & \"c\"";
  p.x_label = "budget";
  p.y_label = "accuracy";
  p.y_min = 0;
  p.y_max = 1;
  p.series.push_back({"recency", {{0.25, 0.5}, {0.05, 0.1}, {0.1, 0.3}}, SeriesStyle::kLine});
  p.series.push_back({"full", {{0, 0.9}}, SeriesStyle::kHorizontal});
  p.series.push_back({"window <w>", {{0.08, 0.2}}, SeriesStyle::kMarkers});
  p.series.push_back({"nan", {{std::nan(""), 0.5}, {0.1, INFINITY}}, SeriesStyle::kLine});
  const std::string svg = render_svg(p);
  EXPECT_EQ(test::xml_problem(svg), "") << svg;
  EXPECT_NE(svg.find("a &lt; b &amp; &quot;c&quot;"), std::string::npos);
  EXPECT_NE(svg.find("window &lt;w&gt;"), std::string::npos);
  EXPECT_EQ(svg.find("nan,"), std::string::npos);
  size_t polylines = 0;
  for (size_t at = svg.find("<polyline"); at != std::string::npos; at = svg.find("<polyline", at + 1)) ++polylines;
  EXPECT_EQ(polylines, 1u);  // recency; nan has no finite point
  EXPECT_NE(svg.find("stroke-dasharray"), std::string::npos);  // full's reference line
}

TEST(SvgPlot, EmptyPlotIsStillADocument) {
  EXPECT_EQ(test::xml_problem(render_svg(Plot{})), "");
  Plot flat;
  flat.series.push_back({"one point", {{3, 3}}, SeriesStyle::kLine});
  EXPECT_EQ(test::xml_problem(render_svg(flat)), "");
}

TEST(EvalGrid, AutoPageSizeLeavesSeveralChosenPagesAtTenPercent) {
  // The fixed pages are sink 1 + tail 2 + the open page; 16-token pages at 1K would leave 2.
  EXPECT_EQ(auto_page_tokens(1024, 1, 2), 8);
  EXPECT_EQ(auto_page_tokens(2048, 1, 2), 16);
  EXPECT_EQ(auto_page_tokens(4096, 1, 2), 32);
  EXPECT_EQ(auto_page_tokens(8192, 1, 2), 64);
  EXPECT_EQ(auto_page_tokens(384, 1, 2), 4);
  EXPECT_EQ(auto_page_tokens(64, 1, 2), 4);  // the floor
  GridOptions o;
  o.lengths = {4096, 1024};
  const PageSetup p = page_setup(o);
  EXPECT_EQ(p.page_tokens, 8);
  EXPECT_EQ(p.tau, 8);
  EXPECT_EQ(p.tail_pages(), 2);
  // 10% of 1K at 8-token pages: 12 pages, 8 beyond sink, tail and open page.
  EXPECT_EQ(quest_pages_for(0.10, 1024, p), 8);
  EXPECT_EQ(quest_pages_for(0.01, 1024, p), 1);  // never 0
}

TEST(EvalGrid, PlanRunsFullAndWindowOncePerLength) {
  GridOptions o;
  o.families = {data::TaskFamily::kNiahSingle, data::TaskFamily::kVt};
  o.lengths = {1024, 1024};  // repeats collapse
  o.policies = {"quest", "full", "window", "recency", "full"};
  o.budgets = {0.25, 0.1, 0.1};
  const auto plan = plan_grid(o);
  ASSERT_EQ(plan.size(), 2u * (1 + 1 + 2 + 2));
  EXPECT_EQ(plan[0].policy, "full");
  EXPECT_LT(plan[0].budget, 0);
  EXPECT_EQ(plan[1].policy, "window");
  EXPECT_EQ(plan[2].spec, "recency:0.1");
  EXPECT_EQ(plan[3].spec, "recency:0.25");
  EXPECT_EQ(plan[4].spec, "quest:8");
  EXPECT_EQ(plan[5].policy, "quest");
  EXPECT_EQ(plan[6].family, data::TaskFamily::kVt);
}

TEST(EvalGrid, ValidationNamesTheFlag) {
  auto message = [](const GridOptions& o, bool indexer) -> std::string {
    try {
      validate_grid_options(o, indexer);
    } catch (const Error& e) {
      return e.what();
    }
    return "";
  };
  GridOptions ok;
  EXPECT_EQ(message(ok, false), "");
  GridOptions bad = ok;
  bad.policies = {"full", "h2o"};
  EXPECT_NE(message(bad, false).find("unknown policy 'h2o'"), std::string::npos);
  bad = ok;
  bad.budgets = {0.1, 1.5};
  EXPECT_NE(message(bad, false).find("--budgets"), std::string::npos);
  bad.budgets = {0};
  EXPECT_NE(message(bad, false).find("--budgets"), std::string::npos);
  bad = ok;
  bad.lengths = {63};
  EXPECT_NE(message(bad, false).find("--lengths"), std::string::npos);
  bad = ok;
  bad.samples = 0;
  EXPECT_NE(message(bad, false).find("--samples"), std::string::npos);
  bad = ok;
  bad.policies = {"lsa"};
  EXPECT_NE(message(bad, false).find("--indexer"), std::string::npos);
  EXPECT_EQ(message(bad, true), "");
}

TEST(EvalGrid, SummarizeAggregatesSamples) {
  CellPlan plan;
  plan.policy = "recency";
  plan.budget = 0.1;
  SampleResult a, b, c;
  a.score = 1.0;  // 2 of 2 answers
  a.answers = 2;
  a.answers_found = 2;
  a.resident_fraction_avg = 0.1;
  a.resident_fraction_peak = 0.12;
  a.resident_fraction_steps = {0.08f, 0.12f};
  a.resident_kv_bytes_peak = 100;
  a.decode_tokens = 10;
  a.decode_seconds = 1;
  b.score = 0.5;  // 1 of 2
  b.answers = 2;
  b.answers_found = 1;
  b.resident_fraction_avg = 0.2;
  b.resident_fraction_peak = 0.2;
  b.resident_fraction_steps = {0.2f};
  b.resident_kv_bytes_peak = 300;
  b.decode_tokens = 10;
  b.decode_seconds = 1;
  c.answers = 2;                  // 0 of 2, stopped before any decode step:
  c.resident_fraction_avg = 1.0;  // the runtime's "nothing measured" value, not averaged
  const CellResult r = summarize_cell(plan, {a, b, c});
  EXPECT_EQ(r.n, 3);
  EXPECT_DOUBLE_EQ(r.accuracy, 0.5);
  EXPECT_DOUBLE_EQ(r.answers_found, 3);
  EXPECT_DOUBLE_EQ(r.answers_total, 6);
  EXPECT_NEAR(r.ci_low, wilson_interval(3, 6).low, 1e-12);
  EXPECT_NEAR(r.solved, 1.0 / 3, 1e-12);
  EXPECT_NEAR(r.solved_ci_high, wilson_interval(1, 3).high, 1e-12);
  EXPECT_NEAR(r.resident_fraction_avg, 0.15, 1e-12);
  EXPECT_DOUBLE_EQ(r.resident_fraction_peak, 0.2);
  EXPECT_EQ(r.resident_kv_bytes_peak, 300u);
  EXPECT_DOUBLE_EQ(r.decode_tok_s, 10.0);
  EXPECT_EQ(r.resident_fraction_steps, a.resident_fraction_steps);  // sample 0's series
}

TEST(EvalReport, SampleJsonRoundTrips) {
  SampleResult a;
  a.score = 0.75;
  a.answers = 4;
  a.answers_found = 3;
  a.resident_kv_bytes_avg = uint64_t{1} << 40;
  a.resident_fraction_steps = {0.25f, 0.5f};
  const SampleResult b = sample_from_json(json::parse(sample_to_json(a).dump()));
  EXPECT_EQ(b.score, a.score);
  EXPECT_EQ(b.answers, a.answers);
  EXPECT_EQ(b.resident_kv_bytes_avg, a.resident_kv_bytes_avg);
  EXPECT_EQ(b.resident_fraction_steps, a.resident_fraction_steps);
  json broken = sample_to_json(a);
  broken.erase("score");
  EXPECT_THROW(sample_from_json(broken), json::exception);
}

CellResult fake_cell(const CellPlan& plan, double accuracy, double resident) {
  CellResult c;
  c.plan = plan;
  c.n = 4;
  c.accuracy = accuracy;
  c.ci_low = accuracy / 2;
  c.ci_high = 1;
  c.resident_fraction_avg = resident;
  c.resident_fraction_steps = {static_cast<float>(resident), static_cast<float>(resident)};
  return c;
}

TEST(EvalReport, ResumeKeyMarkdownAndPlots) {
  GridOptions o;
  o.families = {data::TaskFamily::kNiahSingle};
  o.lengths = {256, 512};
  o.policies = {"full", "window", "random"};
  o.budgets = {0.25};
  o.samples = 4;
  RunIdentity id{"m.gguf", "abc", "", "", "f16"};
  json results = {{"command", "flashmem eval ..."}, {"model", {{"name", "m.gguf"}, {"sha256", "abc"}}},
                  {"indexer", nullptr}, {"cells", json::array()}};
  for (const CellPlan& p : plan_grid(o))
    results["cells"].push_back(cell_to_json(fake_cell(p, 0.5, p.policy == "full" ? 1.0 : 0.25), cell_config(p, o, id)));
  ASSERT_EQ(results["cells"].size(), 6u);
  EXPECT_TRUE(results["cells"][0]["budget"].is_null());
  EXPECT_EQ(results["cells"][2]["budget"], 0.25);

  // The same plan finds its cell; another seed or model does not.
  const CellPlan p = plan_grid(o)[2];
  const json dumped = json::parse(results.dump());  // through text, as a resumed run reads it
  EXPECT_NE(find_cell(dumped["cells"], cell_config(p, o, id)), nullptr);
  GridOptions other = o;
  other.seed = 1;
  EXPECT_EQ(find_cell(dumped["cells"], cell_config(p, other, id)), nullptr);
  RunIdentity other_model = id;
  other_model.model_sha256 = "def";
  EXPECT_EQ(find_cell(dumped["cells"], cell_config(p, o, other_model)), nullptr);

  const std::string md = render_markdown(results);
  EXPECT_NE(md.find("| family | length | full | window | random@0.25 | window resident |"), std::string::npos) << md;
  EXPECT_NE(md.find("| niah_single | 512 | 0.50 [0.25, 1.00] |"), std::string::npos) << md;
  EXPECT_NE(md.find("## Resident KV fraction"), std::string::npos);

  const auto plots = render_plots(results);
  std::vector<std::string> names;
  for (const auto& [name, svg] : plots) {
    names.push_back(name);
    EXPECT_EQ(test::xml_problem(svg), "") << name;
  }
  EXPECT_EQ(names, (std::vector<std::string>{"accuracy_niah_single.svg", "accuracy_niah_single_256.svg",
                                             "accuracy_niah_single_512.svg", "resident_steps.svg"}));
}


// The summary compares every column with full attention over the rows where full scores >= 0.85
// only: here the 256-token row (full 1.0), not the 512-token row (full 0.5).
TEST(EvalReport, SummaryAgainstFullUsesRowsFullSolves) {
  GridOptions o;
  o.families = {data::TaskFamily::kNiahSingle};
  o.lengths = {256, 512};
  o.policies = {"full", "random"};
  o.budgets = {0.25};
  o.samples = 4;
  RunIdentity id{"m.gguf", "abc", "", "", "f16"};
  json results = {{"command", "flashmem eval ..."}, {"model", {{"name", "m.gguf"}, {"sha256", "abc"}}},
                  {"indexer", nullptr}, {"cells", json::array()}};
  for (const CellPlan& p : plan_grid(o)) {
    const bool full = p.policy == "full";
    const double accuracy = p.length == 256 ? (full ? 1.0 : 0.3) : (full ? 0.5 : 0.9);
    results["cells"].push_back(cell_to_json(fake_cell(p, accuracy, full ? 1.0 : 0.25), cell_config(p, o, id)));
  }
  const std::string md = render_markdown(results);
  EXPECT_NE(md.find("Over the 1 (family, length) rows where full attention scores >= 0.85"), std::string::npos) << md;
  EXPECT_NE(md.find("| random@0.25 | 0.300 | 1.000 | -70.0 | 0.250 |"), std::string::npos) << md;
  EXPECT_NE(md.find("| full | 1.000 | 1.000 | +0.0 | 1.000 |"), std::string::npos) << md;
}

}  // namespace
}  // namespace flashmem::eval
