#include "eval/eval_report.h"

#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <map>

#include "eval/svg_plot.h"

namespace flashmem::eval {

using nlohmann::json;

namespace {

json budget_json(double budget) { return budget < 0 ? json(nullptr) : json(budget); }

// "recency@0.1", or "full" for a policy without budget.
std::string column_label(const json& cell) {
  const std::string policy = cell.at("policy").get<std::string>();
  if (cell.at("budget").is_null()) return policy;
  return fmt::format("{}@{:g}", policy, cell.at("budget").get<double>());
}

struct Column {
  std::string policy;
  json budget;  // null for full/window
  std::string label;
};

// Columns in the order the cells list them (plan order: policy, then budget ascending).
std::vector<Column> columns_of(const json& cells) {
  std::vector<Column> cols;
  for (const json& c : cells) {
    const std::string label = column_label(c);
    if (std::none_of(cols.begin(), cols.end(), [&](const Column& x) { return x.label == label; }))
      cols.push_back({c.at("policy").get<std::string>(), c.at("budget"), label});
  }
  return cols;
}

// (family, length) rows in cell order.
std::vector<std::pair<std::string, int64_t>> rows_of(const json& cells) {
  std::vector<std::pair<std::string, int64_t>> rows;
  for (const json& c : cells) {
    std::pair<std::string, int64_t> r{c.at("family").get<std::string>(), c.at("length").get<int64_t>()};
    if (std::find(rows.begin(), rows.end(), r) == rows.end()) rows.push_back(r);
  }
  return rows;
}

const json* cell_at(const json& cells, const std::string& family, int64_t length, const std::string& label) {
  for (const json& c : cells)
    if (c.at("family") == family && c.at("length") == length && column_label(c) == label) return &c;
  return nullptr;
}

std::string table(const json& cells, bool accuracy) {
  const auto cols = columns_of(cells);
  const bool has_window = std::any_of(cols.begin(), cols.end(), [](const Column& c) { return c.policy == "window"; });
  std::string s = "| family | length |";
  std::string rule = "|---|---:|";
  for (const Column& c : cols) {
    s += fmt::format(" {} |", c.label);
    rule += "---:|";
  }
  if (accuracy && has_window) {
    s += " window resident |";
    rule += "---:|";
  }
  s += "\n" + rule + "\n";
  for (const auto& [family, length] : rows_of(cells)) {
    s += fmt::format("| {} | {} |", family, length);
    for (const Column& col : cols) {
      const json* c = cell_at(cells, family, length, col.label);
      if (c == nullptr) s += " – |";
      else if (accuracy)
        s += fmt::format(" {:.2f} [{:.2f}, {:.2f}] |", c->at("accuracy").get<double>(),
                         c->at("ci_low").get<double>(), c->at("ci_high").get<double>());
      else s += fmt::format(" {:.3f} |", c->at("resident_fraction_avg").get<double>());
    }
    if (accuracy && has_window) {
      const json* w = cell_at(cells, family, length, "window");
      s += w ? fmt::format(" {:.3f} |", w->at("resident_fraction_avg").get<double>()) : " – |";
    }
    s += "\n";
  }
  return s;
}

double mean(const std::vector<double>& v) {
  double sum = 0;
  for (const double x : v) sum += x;
  return v.empty() ? std::nan("") : sum / static_cast<double>(v.size());
}

// Every column against full attention, over the (family, length) rows where full scores at least
// kFullFloor: mean accuracy, full's mean over the same rows, the gap in points and the mean
// measured resident fraction. Why those rows: a policy cannot keep accuracy the model never had
// (the LSA claim is stated for tasks full attention solves).
constexpr double kFullFloor = 0.85;

std::string summary_table(const json& cells) {
  std::vector<std::pair<std::string, int64_t>> rows;
  for (const auto& [family, length] : rows_of(cells)) {
    const json* f = cell_at(cells, family, length, "full");
    if (f != nullptr && f->at("accuracy").get<double>() >= kFullFloor) rows.emplace_back(family, length);
  }
  if (rows.empty()) return fmt::format("No (family, length) row has full attention at >= {:.2f}.\n", kFullFloor);
  std::string s = fmt::format(
      "Over the {} (family, length) rows where full attention scores >= {:.2f}:\n\n"
      "| policy | accuracy | full | vs full (points) | resident fraction |\n|---|---:|---:|---:|---:|\n",
      rows.size(), kFullFloor);
  for (const Column& col : columns_of(cells)) {
    std::vector<double> acc, full, resident;
    for (const auto& [family, length] : rows) {
      const json* c = cell_at(cells, family, length, col.label);
      if (c == nullptr) continue;
      acc.push_back(c->at("accuracy").get<double>());
      full.push_back(cell_at(cells, family, length, "full")->at("accuracy").get<double>());
      resident.push_back(c->at("resident_fraction_avg").get<double>());
    }
    if (acc.empty()) continue;
    s += fmt::format("| {} | {:.3f} | {:.3f} | {:+.1f} | {:.3f} |\n", col.label, mean(acc), mean(full),
                     100.0 * (mean(acc) - mean(full)), mean(resident));
  }
  return s;
}

// Accuracy against budget over the cells of one family (and one length, or all when length < 0).
Plot accuracy_plot(const json& cells, const std::string& family, int64_t length, const std::string& title) {
  Plot p;
  p.title = title;
  p.x_label = "KV budget (resident fraction)";
  p.y_label = "accuracy (string-match-all)";
  p.y_min = 0;
  p.y_max = 1;
  double max_budget = 0;
  std::vector<std::string> policies;
  for (const json& c : cells)
    if (std::find(policies.begin(), policies.end(), c.at("policy")) == policies.end())
      policies.push_back(c.at("policy").get<std::string>());
  for (const std::string& policy : policies) {
    std::map<double, std::vector<double>> by_budget;  // budget (-1: none) -> accuracies
    std::vector<double> resident;
    for (const json& c : cells) {
      if (c.at("family") != family || c.at("policy") != policy) continue;
      if (length >= 0 && c.at("length") != length) continue;
      const double b = c.at("budget").is_null() ? -1 : c.at("budget").get<double>();
      by_budget[b].push_back(c.at("accuracy").get<double>());
      resident.push_back(c.at("resident_fraction_avg").get<double>());
      max_budget = std::max(max_budget, b);
    }
    if (by_budget.empty()) continue;
    PlotSeries s;
    s.name = policy;
    if (policy == "full") {
      s.style = SeriesStyle::kHorizontal;
      s.points.push_back({0, mean(by_budget.begin()->second)});
    } else if (policy == "window") {
      s.style = SeriesStyle::kMarkers;
      s.name = "window (at its resident fraction)";
      s.points.push_back({mean(resident), mean(by_budget.begin()->second)});
    } else {
      for (const auto& [b, acc] : by_budget) s.points.push_back({b, mean(acc)});
    }
    p.series.push_back(std::move(s));
  }
  p.x_min = 0;
  p.x_max = max_budget > 0 ? std::min(1.0, std::ceil(max_budget * 20 - 1e-9) / 20) : 1;
  // window's point may lie beyond the largest budget: widen the axis to show it.
  for (const PlotSeries& s : p.series)
    for (const auto& [x, y] : s.points)
      if (s.style == SeriesStyle::kMarkers && std::isfinite(x) && x > p.x_max)
        p.x_max = std::min(1.0, std::ceil(x * 20) / 20);
  return p;
}

}  // namespace

json cell_config(const CellPlan& plan, const GridOptions& o, const RunIdentity& id) {
  return json{{"model_sha256", id.model_sha256},
              {"indexer_sha256", plan.policy == "lsa" ? id.indexer_sha256 : ""},
              {"kv_type", id.kv_type},
              {"family", data::family_name(plan.family)},
              {"length", plan.length},
              {"policy", plan.policy},
              {"budget", budget_json(plan.budget)},
              {"spec", plan.spec},
              {"page_tokens", plan.pages.page_tokens},
              {"tau", plan.pages.tau},
              {"sink_pages", plan.pages.sink_pages},
              {"recent_pages", plan.pages.recent_pages},
              {"samples", o.samples},
              {"seed", o.seed},
              {"value", data::value_kind_name(o.value)},
              {"filler", data::filler_kind_name(o.filler)},
              {"extra_tokens", o.extra_tokens}};
}

json cell_to_json(const CellResult& c, const json& config) {
  return json{{"family", data::family_name(c.plan.family)},
              {"length", c.plan.length},
              {"policy", c.plan.policy},
              {"budget", budget_json(c.plan.budget)},
              {"spec", c.plan.spec},
              {"n", c.n},
              {"accuracy", c.accuracy},
              {"ci_low", c.ci_low},
              {"ci_high", c.ci_high},
              {"ci", "wilson95_per_answer"},
              {"answers_found", c.answers_found},
              {"answers_total", c.answers_total},
              {"solved", c.solved},
              {"solved_ci_low", c.solved_ci_low},
              {"solved_ci_high", c.solved_ci_high},
              {"resident_fraction_avg", c.resident_fraction_avg},
              {"resident_fraction_peak", c.resident_fraction_peak},
              {"resident_kv_bytes_avg", c.resident_kv_bytes_avg},
              {"resident_kv_bytes_peak", c.resident_kv_bytes_peak},
              {"full_kv_bytes_avg", c.full_kv_bytes_avg},
              {"attn_bytes_per_step", c.attn_bytes_per_step},
              {"decode_tokens", c.decode_tokens},
              {"decode_seconds", c.decode_seconds},
              {"decode_tok_s", c.decode_tok_s},
              {"page_tokens", c.plan.pages.page_tokens},
              {"tau", c.plan.pages.tau},
              {"sink_pages", c.plan.pages.sink_pages},
              {"recent_pages", c.plan.pages.recent_pages},
              {"tail_pages", c.plan.pages.tail_pages()},
              {"seconds", c.seconds},
              {"resident_fraction_steps", c.resident_fraction_steps},
              {"config", config}};
}

json sample_to_json(const SampleResult& r) {
  return json{{"score", r.score},
              {"answers", r.answers},
              {"answers_found", r.answers_found},
              {"resident_fraction_avg", r.resident_fraction_avg},
              {"resident_fraction_peak", r.resident_fraction_peak},
              {"resident_kv_bytes_avg", r.resident_kv_bytes_avg},
              {"resident_kv_bytes_peak", r.resident_kv_bytes_peak},
              {"full_kv_bytes", r.full_kv_bytes},
              {"attn_bytes_per_step", r.attn_bytes_per_step},
              {"decode_tokens", r.decode_tokens},
              {"decode_seconds", r.decode_seconds},
              {"seconds", r.seconds},
              {"resident_fraction_steps", r.resident_fraction_steps}};
}

SampleResult sample_from_json(const json& j) {
  SampleResult r;
  r.score = j.at("score").get<double>();
  r.answers = j.at("answers").get<int64_t>();
  r.answers_found = j.at("answers_found").get<double>();
  r.resident_fraction_avg = j.at("resident_fraction_avg").get<double>();
  r.resident_fraction_peak = j.at("resident_fraction_peak").get<double>();
  r.resident_kv_bytes_avg = j.at("resident_kv_bytes_avg").get<uint64_t>();
  r.resident_kv_bytes_peak = j.at("resident_kv_bytes_peak").get<uint64_t>();
  r.full_kv_bytes = j.at("full_kv_bytes").get<uint64_t>();
  r.attn_bytes_per_step = j.at("attn_bytes_per_step").get<uint64_t>();
  r.decode_tokens = j.at("decode_tokens").get<int64_t>();
  r.decode_seconds = j.at("decode_seconds").get<double>();
  r.seconds = j.at("seconds").get<double>();
  r.resident_fraction_steps = j.at("resident_fraction_steps").get<std::vector<float>>();
  return r;
}

const json* find_cell(const json& stored, const json& config) {
  if (!stored.is_array()) return nullptr;
  for (const json& c : stored)
    if (c.is_object() && c.contains("config") && c.at("config") == config) return &c;
  return nullptr;
}

std::string render_markdown(const json& results) {
  const json& cells = results.at("cells");
  std::string s = "# flashmem eval: accuracy against KV budget\n\n";
  s += fmt::format("- model: `{}` (header sha256 {})\n", results.at("model").at("name").get<std::string>(),
                   results.at("model").at("sha256").get<std::string>());
  if (results.contains("indexer") && !results.at("indexer").is_null())
    s += fmt::format("- indexer: `{}` (sha256 {})\n", results.at("indexer").at("name").get<std::string>(),
                     results.at("indexer").at("sha256").get<std::string>());
  if (!cells.empty()) {
    const json& c0 = cells.front();
    s += fmt::format("- samples per cell: {}; pages of {} tokens, tau {}, sink {} page(s), recency tail {} pages\n",
                     c0.at("n").get<int64_t>(), c0.at("page_tokens").get<int64_t>(),
                     c0.at("tau").get<int64_t>(), c0.at("sink_pages").get<int64_t>(),
                     c0.at("tail_pages").get<int64_t>());
  }
  s += fmt::format("- command: `{}`\n\n", results.value("command", std::string()));
  s += "Accuracy is the mean string-match-all score (greedy decoding) with a Wilson 95% interval on "
       "the per-answer count (answers found / answers asked). quest@F reads K pages per layer and "
       "step, K = F of the prompt's pages minus sink, tail and open page.\n\n";
  s += "## Against full attention\n\n" + summary_table(cells);
  s += "\n## Accuracy\n\n" + table(cells, true);
  s += "\n## Resident KV fraction (average over decode steps)\n\n" + table(cells, false);
  return s;
}

std::vector<std::pair<std::string, std::string>> render_plots(const json& results) {
  const json& cells = results.at("cells");
  std::vector<std::pair<std::string, std::string>> files;
  std::vector<std::string> families;
  std::vector<int64_t> lengths;
  for (const auto& [family, length] : rows_of(cells)) {
    if (std::find(families.begin(), families.end(), family) == families.end()) families.push_back(family);
    if (std::find(lengths.begin(), lengths.end(), length) == lengths.end()) lengths.push_back(length);
  }
  std::string length_list;
  for (const int64_t l : lengths) length_list += (length_list.empty() ? "" : ", ") + std::to_string(l);
  for (const std::string& family : families) {
    const std::string title = lengths.size() == 1
                                  ? fmt::format("{} at {} tokens", family, lengths.front())
                                  : fmt::format("{}, mean over lengths {}", family, length_list);
    files.emplace_back(fmt::format("accuracy_{}.svg", family),
                       render_svg(accuracy_plot(cells, family, -1, title)));
    if (lengths.size() > 1)
      for (const int64_t l : lengths)
        files.emplace_back(fmt::format("accuracy_{}_{}.svg", family, l),
                           render_svg(accuracy_plot(cells, family, l, fmt::format("{} at {} tokens", family, l))));
  }
  if (families.empty()) return files;

  // Resident fraction per decode step: first family and length, the budget nearest 0.10.
  double chosen = -1;
  for (const json& c : cells)
    if (!c.at("budget").is_null()) {
      const double b = c.at("budget").get<double>();
      if (chosen < 0 || std::abs(b - 0.10) < std::abs(chosen - 0.10)) chosen = b;
    }
  Plot p;
  p.title = chosen < 0 ? fmt::format("resident KV per decode step ({}, {} tokens, sample 0)", families.front(), lengths.front())
                       : fmt::format("resident KV per decode step ({}, {} tokens, budget {:g}, sample 0)",
                                     families.front(), lengths.front(), chosen);
  p.x_label = "decode step";
  p.y_label = "resident fraction of the KV";
  p.y_min = 0;
  p.y_max = 1.05;
  for (const json& c : cells) {
    if (c.at("family") != families.front() || c.at("length") != lengths.front()) continue;
    if (!c.at("budget").is_null() && c.at("budget").get<double>() != chosen) continue;
    PlotSeries s;
    s.name = column_label(c);
    const auto& steps = c.at("resident_fraction_steps");
    for (size_t i = 0; i < steps.size(); ++i) s.points.push_back({static_cast<double>(i + 1), steps[i].get<double>()});
    p.series.push_back(std::move(s));
  }
  files.emplace_back("resident_steps.svg", render_svg(p));
  return files;
}

}  // namespace flashmem::eval
