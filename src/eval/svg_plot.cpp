#include "eval/svg_plot.h"

#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <limits>

namespace flashmem::eval {
namespace {

// Canvas in px: the plot area plus room for tick labels (left, bottom), title (top) and the
// legend (right; series names such as "oracle" or "recency" fit in 150 px at 12 px type).
constexpr double kWidth = 720, kHeight = 420;
constexpr double kLeft = 64, kRight = 170, kTop = 40, kBottom = 56;
constexpr int kTicks = 5;  // about five labelled ticks per axis keeps labels from colliding

// Distinguishable on white (Okabe-Ito palette, colour-blind safe), cycled.
constexpr const char* kColors[] = {"#0072B2", "#D55E00", "#009E73", "#CC79A7",
                                   "#E69F00", "#56B4E9", "#000000", "#F0E442"};

struct Range {
  double lo, hi;
};

// Step of about (hi - lo) / kTicks rounded to 1, 2 or 5 times a power of ten.
double nice_step(double span) {
  const double raw = span / kTicks;
  const double mag = std::pow(10.0, std::floor(std::log10(raw)));
  const double r = raw / mag;
  return (r < 1.5 ? 1 : r < 3.5 ? 2 : r < 7.5 ? 5 : 10) * mag;
}

Range axis_range(double lo, double hi, bool from_data, double data_lo, double data_hi) {
  if (!from_data) return {lo, hi};
  if (!(data_lo <= data_hi)) return {0, 1};  // no data
  if (data_hi - data_lo < 1e-12) {
    const double pad = std::max(std::abs(data_lo) * 0.1, 0.5);
    data_lo -= pad;
    data_hi += pad;
  }
  const double step = nice_step(data_hi - data_lo);
  return {std::floor(data_lo / step) * step, std::ceil(data_hi / step) * step};
}

std::string fmt_tick(double v, double step) {
  const int decimals = std::clamp(static_cast<int>(-std::floor(std::log10(step) + 1e-9)), 0, 6);
  return fmt::format("{:.{}f}", std::abs(v) < step * 1e-9 ? 0.0 : v, decimals);
}

}  // namespace

std::string xml_escape(std::string_view text) {
  std::string out;
  out.reserve(text.size());
  for (const char c : text) {
    switch (c) {
      case '&': out += "&amp;"; break;
      case '<': out += "&lt;"; break;
      case '>': out += "&gt;"; break;
      case '"': out += "&quot;"; break;
      case '\'': out += "&apos;"; break;
      default: out += c;
    }
  }
  return out;
}

std::string render_svg(const Plot& plot) {
  // Data extent over finite points.
  constexpr double kInf = std::numeric_limits<double>::infinity();
  double xlo = kInf, xhi = -kInf, ylo = kInf, yhi = -kInf;
  std::vector<std::vector<std::pair<double, double>>> clean(plot.series.size());
  for (size_t i = 0; i < plot.series.size(); ++i) {
    for (const auto& [x, y] : plot.series[i].points) {
      if (!std::isfinite(x) || !std::isfinite(y)) continue;
      clean[i].push_back({x, y});
      if (plot.series[i].style != SeriesStyle::kHorizontal) {
        xlo = std::min(xlo, x);
        xhi = std::max(xhi, x);
      }
      ylo = std::min(ylo, y);
      yhi = std::max(yhi, y);
    }
    if (plot.series[i].style == SeriesStyle::kLine) std::sort(clean[i].begin(), clean[i].end());
  }
  const Range xr = axis_range(plot.x_min, plot.x_max, !(plot.x_min < plot.x_max), xlo, xhi);
  const Range yr = axis_range(plot.y_min, plot.y_max, !(plot.y_min < plot.y_max), ylo, yhi);
  const double pw = kWidth - kLeft - kRight, ph = kHeight - kTop - kBottom;
  auto px = [&](double x) { return kLeft + (x - xr.lo) / (xr.hi - xr.lo) * pw; };
  auto py = [&](double y) { return kTop + ph - (y - yr.lo) / (yr.hi - yr.lo) * ph; };
  auto inside = [&](double x, double y) {
    return x >= xr.lo - 1e-12 && x <= xr.hi + 1e-12 && y >= yr.lo - 1e-12 && y <= yr.hi + 1e-12;
  };

  std::string s = fmt::format(
      "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n"
      "<svg xmlns=\"http://www.w3.org/2000/svg\" version=\"1.1\" width=\"{0}\" height=\"{1}\" "
      "viewBox=\"0 0 {0} {1}\" font-family=\"sans-serif\" font-size=\"12\">\n"
      "<rect x=\"0\" y=\"0\" width=\"{0}\" height=\"{1}\" fill=\"white\"/>\n",
      kWidth, kHeight);
  s += fmt::format("<text x=\"{:.1f}\" y=\"22\" text-anchor=\"middle\" font-size=\"14\">{}</text>\n",
                   kLeft + pw / 2, xml_escape(plot.title));
  // Grid, ticks and tick labels.
  for (const bool is_x : {true, false}) {
    const Range r = is_x ? xr : yr;
    const double step = nice_step(r.hi - r.lo);
    for (double v = std::ceil(r.lo / step - 1e-9) * step; v <= r.hi + step * 1e-9; v += step) {
      const std::string label = fmt_tick(v, step);
      if (is_x) {
        s += fmt::format("<line x1=\"{0:.1f}\" y1=\"{1:.1f}\" x2=\"{0:.1f}\" y2=\"{2:.1f}\" stroke=\"#e0e0e0\"/>\n"
                         "<text x=\"{0:.1f}\" y=\"{3:.1f}\" text-anchor=\"middle\">{4}</text>\n",
                         px(v), kTop, kTop + ph, kTop + ph + 16, label);
      } else {
        s += fmt::format("<line x1=\"{1:.1f}\" y1=\"{0:.1f}\" x2=\"{2:.1f}\" y2=\"{0:.1f}\" stroke=\"#e0e0e0\"/>\n"
                         "<text x=\"{3:.1f}\" y=\"{4:.1f}\" text-anchor=\"end\">{5}</text>\n",
                         py(v), kLeft, kLeft + pw, kLeft - 6, py(v) + 4, label);
      }
    }
  }
  s += fmt::format("<rect x=\"{}\" y=\"{}\" width=\"{}\" height=\"{}\" fill=\"none\" stroke=\"black\"/>\n",
                   kLeft, kTop, pw, ph);
  s += fmt::format("<text x=\"{:.1f}\" y=\"{:.1f}\" text-anchor=\"middle\">{}</text>\n", kLeft + pw / 2,
                   kHeight - 12, xml_escape(plot.x_label));
  s += fmt::format("<text x=\"16\" y=\"{0:.1f}\" text-anchor=\"middle\" transform=\"rotate(-90 16 {0:.1f})\">{1}</text>\n",
                   kTop + ph / 2, xml_escape(plot.y_label));

  // Series and legend.
  for (size_t i = 0; i < plot.series.size(); ++i) {
    const PlotSeries& series = plot.series[i];
    const char* color = kColors[i % std::size(kColors)];
    const bool horizontal = series.style == SeriesStyle::kHorizontal;
    if (horizontal && !clean[i].empty()) {
      const double y = clean[i].front().second;
      if (y >= yr.lo && y <= yr.hi)
        s += fmt::format("<line x1=\"{:.1f}\" y1=\"{:.1f}\" x2=\"{:.1f}\" y2=\"{:.1f}\" stroke=\"{}\" "
                         "stroke-width=\"2\" stroke-dasharray=\"6 4\"/>\n",
                         kLeft, py(y), kLeft + pw, py(y), color);
    } else {
      if (series.style == SeriesStyle::kLine && clean[i].size() > 1) {
        std::string pts;
        for (const auto& [x, y] : clean[i])
          if (inside(x, y)) pts += fmt::format("{}{:.1f},{:.1f}", pts.empty() ? "" : " ", px(x), py(y));
        s += fmt::format("<polyline points=\"{}\" fill=\"none\" stroke=\"{}\" stroke-width=\"2\"/>\n",
                         pts, color);
      }
      // Markers show where measurements are; on a long series (decode steps) they only clutter.
      const bool markers = series.style == SeriesStyle::kMarkers || clean[i].size() <= 30;
      for (const auto& [x, y] : clean[i])
        if (markers && inside(x, y))
          s += fmt::format("<circle cx=\"{:.1f}\" cy=\"{:.1f}\" r=\"3.5\" fill=\"{}\"/>\n", px(x), py(y), color);
    }
    const double ly = kTop + 10 + 20 * static_cast<double>(i);
    const double lx = kLeft + pw + 14;
    s += fmt::format("<line x1=\"{:.1f}\" y1=\"{:.1f}\" x2=\"{:.1f}\" y2=\"{:.1f}\" stroke=\"{}\" "
                     "stroke-width=\"2\"{}/>\n",
                     lx, ly, lx + 24, ly, color, horizontal ? " stroke-dasharray=\"6 4\"" : "");
    s += fmt::format("<text x=\"{:.1f}\" y=\"{:.1f}\">{}</text>\n", lx + 30, ly + 4, xml_escape(series.name));
  }
  s += "</svg>\n";
  return s;
}

}  // namespace flashmem::eval
