// A small SVG line-plot writer for the evaluation report (no plotting dependency): axes with
// ticks, one polyline (with point markers) per series, horizontal reference lines, a legend.
// Output is a complete, self-contained SVG 1.1 document.
#pragma once
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace flashmem::eval {

enum class SeriesStyle {
  kLine,        // polyline through the points (sorted by x), a marker on each when <= 30
  kMarkers,     // markers only
  kHorizontal,  // one dashed line across the plot at the first point's y (a reference level)
};

struct PlotSeries {
  std::string name;                               // legend text
  std::vector<std::pair<double, double>> points;  // (x, y); points with a non-finite value are dropped
  SeriesStyle style = SeriesStyle::kLine;
};

struct Plot {
  std::string title, x_label, y_label;
  // Axis ranges; when min >= max the range is taken from the data (padded to nice ticks).
  double x_min = 0, x_max = 0, y_min = 0, y_max = 0;
  std::vector<PlotSeries> series;
};

// The SVG document. Never throws on data: empty plots and empty series give empty axes.
std::string render_svg(const Plot& plot);

// Text escaped for XML character data and attribute values (& < > " ').
std::string xml_escape(std::string_view text);

}  // namespace flashmem::eval
