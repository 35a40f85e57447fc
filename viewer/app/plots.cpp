#include "plots.h"

#include <fmt/format.h>

#include <algorithm>
#include <cmath>

namespace viewer::ui {

namespace {

ImU32 lerp_stops(const ImVec4* stops, int n, float t) {
    t = std::clamp(std::isfinite(t) ? t : 0.0f, 0.0f, 1.0f) * static_cast<float>(n - 1);
    const int i = std::min(static_cast<int>(t), n - 2);
    const float f = t - static_cast<float>(i);
    const ImVec4 &a = stops[i], &b = stops[i + 1];
    return ImGui::ColorConvertFloat4ToU32(ImVec4(a.x + (b.x - a.x) * f, a.y + (b.y - a.y) * f, a.z + (b.z - a.z) * f, 1.0f));
}

constexpr ImU32 kAxis = IM_COL32(150, 150, 150, 255);
constexpr ImU32 kGrid = IM_COL32(80, 80, 80, 90);
constexpr ImU32 kText = IM_COL32(210, 210, 210, 255);

ImVec2 resolve(ImVec2 size) {
    const ImVec2 avail = ImGui::GetContentRegionAvail();
    if (size.x <= 0) size.x = std::max(50.0f, avail.x + size.x);
    if (size.y <= 0) size.y = std::max(50.0f, avail.y + size.y);
    return size;
}

// A plot's rectangle: an item of `size` (see resolve) under its own ID, hovered or not.
struct PlotFrame {
    ImVec2 min, max;
    bool hovered;
    ImDrawList* dl;
    PlotFrame(const char* id, ImVec2 size) {
        size = resolve(size);
        ImGui::PushID(id);
        min = ImGui::GetCursorScreenPos();
        max = ImVec2(min.x + size.x, min.y + size.y);
        ImGui::InvisibleButton("##plot", size);
        hovered = ImGui::IsItemHovered();
        dl = ImGui::GetWindowDrawList();
    }
    ~PlotFrame() { ImGui::PopID(); }
    PlotFrame(const PlotFrame&) = delete;
    PlotFrame& operator=(const PlotFrame&) = delete;
};

}  // namespace

ImU32 sequential_colour(float t) {
    static const ImVec4 stops[] = {{0.27f, 0.00f, 0.33f, 1}, {0.23f, 0.32f, 0.55f, 1}, {0.13f, 0.57f, 0.55f, 1},
                                   {0.37f, 0.79f, 0.38f, 1}, {0.99f, 0.91f, 0.14f, 1}};
    return lerp_stops(stops, 5, t);
}

ImU32 diverging_colour(float t) {
    static const ImVec4 stops[] = {{0.23f, 0.30f, 0.75f, 1}, {0.96f, 0.96f, 0.96f, 1}, {0.71f, 0.02f, 0.15f, 1}};
    return lerp_stops(stops, 3, t);
}

ImU32 type_colour(uint32_t type_id) {
    // Hand-picked for the types models mix (float, 8, 6, 5, 4, 3, 2 bits apart at a glance);
    // the rest by hue around the circle.
    switch (type_id) {
        case 0: return IM_COL32(170, 170, 170, 255);   // f32
        case 1: return IM_COL32(80, 130, 230, 255);    // f16
        case 30: return IM_COL32(130, 190, 250, 255);  // bf16
        case 8: return IM_COL32(60, 180, 90, 255);     // q8_0
        case 14: return IM_COL32(40, 200, 190, 255);   // q6_K
        case 13: return IM_COL32(190, 220, 70, 255);   // q5_K
        case 6: return IM_COL32(150, 200, 120, 255);   // q5_0
        case 12: return IM_COL32(245, 160, 40, 255);   // q4_K
        case 2: return IM_COL32(250, 200, 90, 255);    // q4_0
        case 11: return IM_COL32(230, 80, 70, 255);    // q3_K
        case 10: return IM_COL32(200, 70, 170, 255);   // q2_K
        default: break;
    }
    float r, g, b;
    ImGui::ColorConvertHSVtoRGB(std::fmod(0.05f + static_cast<float>(type_id) * 0.618034f, 1.0f), 0.45f, 0.95f, r, g, b);
    return ImGui::ColorConvertFloat4ToU32(ImVec4(r, g, b, 1));
}

Axes draw_axes(ImDrawList* dl, ImVec2 fmin, ImVec2 fmax, double x0, double x1, double y0, double y1, bool log_y, const char* x_label,
               const char* y_label, const std::function<std::string(double)>& y_format, bool x_ticks) {
    const float line = ImGui::GetTextLineHeight();
    auto y_text = [&](double v, double step) {
        if (log_y) return fmt::format("{:g}", std::pow(10.0, v));
        return y_format ? y_format(v) : tick_label(v, step);
    };
    Ticks yt = log_y ? Ticks{} : nice_ticks(y0, y1, std::max(2, static_cast<int>((fmax.y - fmin.y) / (line * 2.5f))));
    if (log_y) {
        yt.step = 1;
        for (double k = std::ceil(y0); k <= y1; ++k) yt.values.push_back(k);
    }
    float label_w = 0;
    for (double v : yt.values) label_w = std::max(label_w, ImGui::CalcTextSize(y_text(v, yt.step).c_str()).x);
    Axes a;
    a.min = ImVec2(fmin.x + label_w + 8, fmin.y + line * 0.5f);
    a.max = ImVec2(fmax.x - 8, fmax.y - line * 2.4f);
    a.x0 = x0;
    a.x1 = x1 > x0 ? x1 : x0 + 1;
    a.y0 = y0;
    a.y1 = y1 > y0 ? y1 : y0 + 1;
    if (a.max.x - a.min.x < 10 || a.max.y - a.min.y < 10) return a;
    dl->AddRect(a.min, a.max, kAxis);
    for (double v : yt.values) {
        const float y = a.y_of(v);
        dl->AddLine(ImVec2(a.min.x, y), ImVec2(a.max.x, y), kGrid);
        const std::string s = y_text(v, yt.step);
        dl->AddText(ImVec2(a.min.x - 4 - ImGui::CalcTextSize(s.c_str()).x, y - line * 0.5f), kText, s.c_str());
    }
    const float widest = ImGui::CalcTextSize("-0.000000").x + 12;
    const Ticks xt = x_ticks ? nice_ticks(a.x0, a.x1, std::max(2, static_cast<int>((a.max.x - a.min.x) / widest))) : Ticks{};
    for (double v : xt.values) {
        const float x = a.x_of(v);
        dl->AddLine(ImVec2(x, a.max.y), ImVec2(x, a.max.y + 4), kAxis);
        const std::string s = tick_label(v, xt.step);
        dl->AddText(ImVec2(x - ImGui::CalcTextSize(s.c_str()).x * 0.5f, a.max.y + 5), kText, s.c_str());
    }
    if (x_label) {
        const ImVec2 ts = ImGui::CalcTextSize(x_label);
        dl->AddText(ImVec2((a.min.x + a.max.x - ts.x) * 0.5f, a.max.y + line * 1.3f), kText, x_label);
    }
    if (y_label) dl->AddText(ImVec2(a.min.x + 4, a.min.y + 2), kText, y_label);
    return a;
}

void histogram_plot(const char* id, const Histogram& h, const HistogramStyle& style, ImVec2 size) {
    const PlotFrame f(id, size);
    ImDrawList* dl = f.dl;
    const bool hovered = f.hovered;
    const double peak = static_cast<double>(h.peak());
    auto y_of_count = [&](uint64_t c) { return style.log_counts ? std::log10(static_cast<double>(c) + 1) : static_cast<double>(c); };
    const double y1 = std::max(style.log_counts ? std::log10(peak + 1) : peak * 1.05, style.log_counts ? 1.0 : 1.0);
    const Axes a = draw_axes(dl, f.min, f.max, h.lo, h.hi, 0, y1, style.log_counts, style.x_label,
                             style.log_counts ? "count (log)" : "count");
    dl->PushClipRect(a.min, a.max, true);
    // One bar per bin, or per pixel column where bins are narrower than a pixel (the
    // tallest bin of the column drawn).
    const size_t n = h.counts.size();
    const float px_per_bin = (a.max.x - a.min.x) / static_cast<float>(std::max<size_t>(n, 1));
    for (size_t i = 0; i < n; ++i) {
        if (!h.counts[i]) continue;
        const float x0 = a.min.x + px_per_bin * static_cast<float>(i), x1 = x0 + std::max(px_per_bin - (px_per_bin > 3 ? 1.0f : 0.0f), 1.0f);
        dl->AddRectFilled(ImVec2(x0, a.y_of(y_of_count(h.counts[i]))), ImVec2(x1, a.max.y), style.colour);
    }
    dl->PopClipRect();
    const ImVec2 m = ImGui::GetIO().MousePos;
    if (hovered && m.x >= a.min.x && m.x < a.max.x && n) {
        const size_t i = std::min(n - 1, static_cast<size_t>((m.x - a.min.x) / px_per_bin));
        dl->AddRectFilled(ImVec2(a.min.x + px_per_bin * static_cast<float>(i), a.min.y),
                          ImVec2(a.min.x + px_per_bin * static_cast<float>(i + 1), a.max.y), IM_COL32(255, 255, 255, 40));
        const uint64_t total = h.total();
        ImGui::SetTooltip("[%.6g, %.6g)\ncount %llu (%.3f%%)", h.bin_lo(i), h.bin_lo(i + 1), static_cast<unsigned long long>(h.counts[i]),
                          total ? 100.0 * static_cast<double>(h.counts[i]) / static_cast<double>(total) : 0.0);
    }
}

void bar_chart(const char* id, const std::vector<Bar>& bars, const std::function<std::string(double)>& format, ImVec2 size) {
    const PlotFrame f(id, size);
    ImDrawList* dl = f.dl;
    const bool hovered = f.hovered;
    double top = 0;
    for (const Bar& b : bars) top = std::max(top, b.value);
    const float line = ImGui::GetTextLineHeight();
    // No numeric x axis: the frame's bottom band holds the bar labels instead.
    const Axes a = draw_axes(dl, f.min, f.max, 0, 1, 0, top > 0 ? top * 1.05 : 1, false, nullptr, nullptr, format, false);
    const size_t n = bars.size();
    if (n == 0) return;
    const float slot = (a.max.x - a.min.x) / static_cast<float>(n);
    float widest = 0;
    for (const Bar& b : bars) widest = std::max(widest, ImGui::CalcTextSize(b.label.c_str()).x);
    const bool labels_fit = widest + 4 < slot;
    // Every k-th label where they do not all fit.
    const size_t every = labels_fit ? 1 : static_cast<size_t>(std::ceil((widest + 6) / std::max(slot, 1.0f)));
    for (size_t i = 0; i < n; ++i) {
        const float x0 = a.min.x + slot * static_cast<float>(i) + (slot > 4 ? slot * 0.12f : 0), x1 = a.min.x + slot * static_cast<float>(i + 1) - (slot > 4 ? slot * 0.12f : 0);
        dl->AddRectFilled(ImVec2(x0, a.y_of(bars[i].value)), ImVec2(std::max(x1, x0 + 1), a.max.y),
                          bars[i].colour ? bars[i].colour : IM_COL32(90, 160, 230, 255));
        if (i % every == 0) {
            const ImVec2 ts = ImGui::CalcTextSize(bars[i].label.c_str());
            dl->AddText(ImVec2(a.min.x + slot * (static_cast<float>(i) + 0.5f) - ts.x * 0.5f, a.max.y + line * 0.3f), kText,
                        bars[i].label.c_str());
        }
    }
    const ImVec2 m = ImGui::GetIO().MousePos;
    if (hovered && m.x >= a.min.x && m.x < a.max.x) {
        const size_t i = std::min(n - 1, static_cast<size_t>((m.x - a.min.x) / slot));
        ImGui::SetTooltip("%s\n%s", bars[i].label.c_str(), format(bars[i].value).c_str());
    }
}

void column_plot(const char* id, const std::vector<float>& values, const char* x_label, const char* y_label, ImVec2 size) {
    const PlotFrame f(id, size);
    ImDrawList* dl = f.dl;
    const bool hovered = f.hovered;
    float top = 0;
    for (float v : values)
        if (std::isfinite(v)) top = std::max(top, v);
    const size_t n = values.size();
    const Axes a = draw_axes(dl, f.min, f.max, 0, static_cast<double>(std::max<size_t>(n, 2) - 1), 0,
                             top > 0 ? top * 1.05 : 1, false, x_label, y_label);
    if (n == 0 || a.max.x - a.min.x < 2) return;
    dl->PushClipRect(a.min, a.max, true);
    const ImU32 colour = IM_COL32(240, 170, 60, 255);
    const float width = a.max.x - a.min.x;
    if (n <= static_cast<size_t>(width)) {
        // A bar per value, centred on its x.
        const float half = width / static_cast<float>(std::max<size_t>(n - 1, 1)) * 0.5f;
        for (size_t i = 0; i < n; ++i) {
            const float x = a.x_of(static_cast<double>(i));
            dl->AddRectFilled(ImVec2(x - std::max(half - 0.5f, 0.5f), a.y_of(values[i])), ImVec2(x + std::max(half - 0.5f, 0.5f), a.max.y), colour);
        }
    } else {
        // More values than pixels: each pixel column shows the largest value it covers.
        const int columns = static_cast<int>(width);
        for (int c = 0; c < columns; ++c) {
            const size_t i0 = static_cast<size_t>(static_cast<double>(c) / columns * static_cast<double>(n));
            const size_t i1 = std::max(i0 + 1, static_cast<size_t>(static_cast<double>(c + 1) / columns * static_cast<double>(n)));
            float hi = values[i0];
            for (size_t i = i0; i < std::min(i1, n); ++i) hi = std::max(hi, values[i]);
            const float x = a.min.x + static_cast<float>(c);
            dl->AddRectFilled(ImVec2(x, a.y_of(hi)), ImVec2(x + 1, a.max.y), colour);
        }
    }
    dl->PopClipRect();
    const ImVec2 m = ImGui::GetIO().MousePos;
    if (hovered && m.x >= a.min.x && m.x < a.max.x) {
        const size_t i = std::min(n - 1, static_cast<size_t>(std::lround(a.x_at(m.x))));
        dl->AddLine(ImVec2(a.x_of(static_cast<double>(i)), a.min.y), ImVec2(a.x_of(static_cast<double>(i)), a.max.y), IM_COL32(255, 255, 255, 80));
        ImGui::SetTooltip("%s %zu\n%s %.6g", x_label ? x_label : "x", i, y_label ? y_label : "y", static_cast<double>(values[i]));
    }
}

void colour_legend(const char* id, double lo, double hi, bool diverging, float width, float height) {
    ImGui::PushID(id);
    const ImVec2 p = ImGui::GetCursorScreenPos();
    ImGui::Dummy(ImVec2(width, height));
    ImDrawList* dl = ImGui::GetWindowDrawList();
    const float bar_w = 16, line = ImGui::GetTextLineHeight();
    const float top = p.y + line * 0.5f, bottom = p.y + height - line * 0.5f;
    const int steps = 64;
    for (int i = 0; i < steps; ++i) {
        const float t0 = static_cast<float>(i) / steps, t1 = static_cast<float>(i + 1) / steps;
        const ImU32 c = diverging ? diverging_colour((t0 + t1) * 0.5f) : sequential_colour((t0 + t1) * 0.5f);
        dl->AddRectFilled(ImVec2(p.x, bottom - (bottom - top) * t1), ImVec2(p.x + bar_w, bottom - (bottom - top) * t0 + 1), c);
    }
    dl->AddRect(ImVec2(p.x, top), ImVec2(p.x + bar_w, bottom), kAxis);
    if (hi > lo) {
        const Ticks t = nice_ticks(lo, hi, std::max(2, static_cast<int>((bottom - top) / (line * 2))));
        for (double v : t.values) {
            const float y = bottom - static_cast<float>((v - lo) / (hi - lo)) * (bottom - top);
            dl->AddLine(ImVec2(p.x + bar_w, y), ImVec2(p.x + bar_w + 4, y), kAxis);
            dl->AddText(ImVec2(p.x + bar_w + 6, y - line * 0.5f), kText, tick_label(v, t.step).c_str());
        }
    }
    ImGui::PopID();
}

}  // namespace viewer::ui
