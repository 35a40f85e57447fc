// Plots drawn with ImGui's draw lists: axes with ticks and labels, hover read-outs. They
// take the model layer's results (viewer/stats.h) and compute nothing heavier than a
// loop over what they draw.
#pragma once

#include <imgui.h>

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "viewer/stats.h"

namespace viewer::ui {

// Colour scales: t in [0, 1].
ImU32 sequential_colour(float t);  // dark blue through green to yellow
ImU32 diverging_colour(float t);   // blue, white at 0.5, red
ImU32 type_colour(uint32_t type_id);  // a fixed colour per tensor type, distinct among the common ones

struct HistogramStyle {
    bool log_counts = false;
    const char* x_label = "value";
    ImU32 colour = IM_COL32(90, 160, 230, 255);
};
// The histogram filling `size` (negative: the available width/height less that much).
void histogram_plot(const char* id, const Histogram& h, const HistogramStyle& style, ImVec2 size);

struct Bar {
    std::string label;
    double value = 0;
    ImU32 colour = 0;  // 0: the default
};
// Vertical bars with the value axis on the left; `format` turns a value into the text of
// ticks and read-outs (give values in a unit whose decimal ticks read well: MiB, not bytes). Labels under the bars when they fit, in the read-out always.
void bar_chart(const char* id, const std::vector<Bar>& bars, const std::function<std::string(double)>& format, ImVec2 size);

// Non-negative values over x = 0..n-1 as bars from zero (n may be far more than pixels: each
// pixel column then shows the largest value it covers), with the read-out of the nearest x.
void column_plot(const char* id, const std::vector<float>& values, const char* x_label, const char* y_label, ImVec2 size);

// A colour legend: the scale from lo to hi with ticks, `height` pixels tall.
void colour_legend(const char* id, double lo, double hi, bool diverging, float width, float height);

// Axis frame helpers shared by the plots: the plot area inside `frame` once room for tick
// labels is left, and the drawing of ticks.
struct Axes {
    ImVec2 min, max;   // the plot area in screen coordinates
    double x0, x1, y0, y1;
    float x_of(double x) const { return min.x + static_cast<float>((x - x0) / (x1 - x0)) * (max.x - min.x); }
    float y_of(double y) const { return max.y - static_cast<float>((y - y0) / (y1 - y0)) * (max.y - min.y); }
    double x_at(float px) const { return x0 + (px - min.x) / (max.x - min.x) * (x1 - x0); }
};
// x_ticks false: no numeric x axis (bar charts label their bars instead).
Axes draw_axes(ImDrawList* dl, ImVec2 frame_min, ImVec2 frame_max, double x0, double x1, double y0, double y1, bool log_y,
               const char* x_label, const char* y_label, const std::function<std::string(double)>& y_format = {}, bool x_ticks = true);

}  // namespace viewer::ui
