// `flashmem lookahead -m MODEL --indexer I.gguf [--length N] [--needles N] [--samples N]
//  [--budget F] [--horizons 1,8,64] [--svg PLOT.svg]`: recall of the pages full attention uses in
// the next h decode steps, for lsa, quest, recency (and oracle as the bound), at one budget
// (src/eval/lookahead.h); a table on stdout and an SVG line plot.
// Samples: niah_multikey in the training form with every needle asked; the prompt ends where the
// first answer starts and the rest (answer, next question, answer, ...) is decoded one token per
// step, so the next 64 steps need several different needles.
#include <fmt/format.h>

#include "commands.h"
#include "common.h"
#include "data/rng.h"
#include "eval/eval_grid.h"
#include "eval/lookahead.h"
#include "eval/svg_plot.h"
#include "tokenizer/tokenizer.h"
#include "util/atomic_file.h"
#include "util/error.h"

namespace flashmem::cli {
namespace {

struct LookaheadArgs {
  WeightMemory weights = WeightMemory::kMap;  // --weights-memory
  std::string model, indexer, svg;
  int64_t length = 2048, samples = 10;
  int needles = 8;  // keys in the haystack, all asked: ~8 x 35 decode steps
  uint64_t seed = 0;
  double budget = 0.1;
  // The geometry `flashmem eval` uses at 1-4K and the bundled indexer was trained for.
  int64_t page_tokens = 8, sink_pages = 1, recent_pages = 2, tau = 8;
  eval::LookaheadOptions o;
  int threads = 0;
};

void run_lookahead(const LookaheadArgs& a) {
  if (!(a.budget > 0 && a.budget <= 1)) fail("--budget must be in (0, 1], got {}", a.budget);
  if (a.samples < 1 || a.samples > 100000) fail("--samples must be in [1, 100000]");
  if (a.needles < 2 || a.needles > 64) fail("--needles must be in [2, 64]");
  auto model = Model::load(a.model, a.weights);
  const Tokenizer tokenizer = Tokenizer::from_gguf(model->file());
  PagedKvOptions base;
  base.budget = a.budget;
  base.page_tokens = a.page_tokens;
  base.sink_pages = a.sink_pages;
  base.recent_pages = a.recent_pages;
  base.tau = a.tau;
  base.indexer = std::make_shared<const IndexerModel>(IndexerModel::load(a.indexer));
  eval::PageSetup pages;
  pages.page_tokens = a.page_tokens;
  pages.sink_pages = a.sink_pages;
  pages.recent_pages = a.recent_pages;
  pages.tau = a.tau;
  const std::string fraction = fmt::format("{}", a.budget);
  const std::vector<std::string> names = {
      "lsa", "quest:" + std::to_string(eval::quest_pages_for(a.budget, a.length, pages)),
      "recency:" + fraction, "oracle:" + fraction};
  std::vector<PolicySpec> policies;
  for (const std::string& n : names) policies.push_back(parse_policy_spec(n));
  SessionOptions so;
  so.n_threads = a.threads;
  so.n_ctx = a.length;
  data::TaskSpec spec;
  spec.family = data::TaskFamily::kNiahMultikey;
  spec.length = a.length;
  spec.n_needles = a.needles;
  spec.n_answered = a.needles;
  std::vector<eval::LookaheadCounts> counts;
  int64_t steps = 0;
  for (int64_t i = 0; i < a.samples; ++i) {
    const data::TaskSample s = data::generate_task(
        spec, data::mix_seed(a.seed + static_cast<uint64_t>(a.length), static_cast<uint64_t>(i)), tokenizer);
    const auto split = static_cast<size_t>(s.answer_spans.at(0).begin);
    const std::span<const int32_t> tokens(s.tokens);
    eval::measure_lookahead(model, so, base, policies, tokens.first(split), tokens.subspan(split), a.o, counts);
    steps += static_cast<int64_t>(tokens.size() - split);
  }
  fmt::print("lookahead recall at budget {} ({} niah_multikey samples of {} tokens, {} needles asked, {} "
             "decode steps, used = pages with >= {} of a step's attention)\n",
             a.budget, a.samples, a.length, a.needles, steps, a.o.min_share);
  fmt::print("{:<14}", "policy");
  for (const int64_t h : a.o.horizons) fmt::print(" {:>8}", fmt::format("h={}", h));
  fmt::print("\n");
  eval::Plot plot;
  plot.title = fmt::format("Recall of the pages full attention uses in the next h steps ({}% budget, {} tokens)",
                           100 * a.budget, a.length);
  plot.x_label = "horizon h (decode steps)";
  plot.y_label = "recall";
  plot.y_min = 0;
  plot.y_max = 1;
  for (size_t p = 0; p < names.size(); ++p) {
    fmt::print("{:<14}", names[p]);
    eval::PlotSeries series;
    series.name = names[p];
    for (size_t h = 0; h < a.o.horizons.size(); ++h) {
      fmt::print(" {:>8.3f}", counts[p].recall(h));
      series.points.emplace_back(static_cast<double>(a.o.horizons[h]), counts[p].recall(h));
    }
    fmt::print("\n");
    plot.series.push_back(std::move(series));
  }
  if (!a.svg.empty()) write_file_atomic(a.svg, eval::render_svg(plot));
}

const CommandRegistration kLookahead("lookahead", [](CLI::App& app) {
  auto a = std::make_shared<LookaheadArgs>();
  auto* cmd = app.add_subcommand("lookahead",
                                 "Recall of the pages full attention uses in the next h steps: lsa vs quest vs recency");
  cmd->add_option("-m,--model", a->model, "model .gguf")->required();
  cmd->add_option("--indexer", a->indexer, "Memory Indexer .gguf (policy lsa)")->required();
  cmd->add_option("--needles", a->needles, "needles in the haystack, all asked")->capture_default_str();
  cmd->add_option("--length", a->length, "prompt length in tokens")->capture_default_str();
  cmd->add_option("--samples", a->samples, "samples")->capture_default_str();
  cmd->add_option("--seed", a->seed, "sample i: mix_seed(seed + length, i), as eval-tasks")->capture_default_str();
  cmd->add_option("--budget", a->budget, "resident fraction for every policy")->capture_default_str();
  cmd->add_option("--page-tokens", a->page_tokens, "tokens per KV page")->capture_default_str();
  cmd->add_option("--sink-pages", a->sink_pages, "always-resident first pages")->capture_default_str();
  cmd->add_option("--recent-pages", a->recent_pages, "always-resident newest pages")->capture_default_str();
  cmd->add_option("--tau", a->tau, "decode steps per selection cycle")->capture_default_str();
  cmd->add_option("--horizons", a->o.horizons, "h values")->delimiter(',')->capture_default_str();
  cmd->add_option("--min-share", a->o.min_share, "share of a step's attention mass that makes a page used")
      ->capture_default_str();
  cmd->add_option("--svg", a->svg, "write the plot here");
  add_threads_option(cmd, a->threads);
  add_weights_memory_option(cmd, a->weights);
  cmd->callback([a] { run_lookahead(*a); });
});

}  // namespace
}  // namespace flashmem::cli
