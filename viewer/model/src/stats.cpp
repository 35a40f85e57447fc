#include "viewer/stats.h"

#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <limits>
#include <stdexcept>

namespace viewer {

// ---- ValueStats ------------------------------------------------------------------------

double ValueStats::stddev() const {
    const uint64_t n = finite();
    return n ? std::sqrt(m2_ / static_cast<double>(n)) : 0.0;
}

void ValueStats::add(std::span<const float> values) {
    // The chunk's own mean and squared deviations (two passes over values in cache), then
    // combined with what came before: stable where one running sum of squares is not.
    ValueStats chunk;
    double sum = 0;
    float lo = std::numeric_limits<float>::infinity(), hi = -lo;
    uint64_t finite_n = 0;
    for (float x : values) {
        if (std::isnan(x)) {
            ++chunk.nans;
        } else if (std::isinf(x)) {
            ++chunk.infs;
        } else {
            ++finite_n;
            sum += x;
            lo = std::min(lo, x);
            hi = std::max(hi, x);
            chunk.zeros += x == 0.0f;
        }
    }
    chunk.count = values.size();
    if (finite_n) {
        chunk.mean_ = sum / static_cast<double>(finite_n);
        double m2 = 0;
        for (float x : values)
            if (std::isfinite(x)) {
                const double d = x - chunk.mean_;
                m2 += d * d;
            }
        chunk.m2_ = m2;
        chunk.min = lo;
        chunk.max = hi;
    }
    merge(chunk);
}

void ValueStats::merge(const ValueStats& o) {
    const uint64_t na = finite(), nb = o.finite();
    if (nb) {
        if (!na) {
            min = o.min;
            max = o.max;
            mean_ = o.mean_;
            m2_ = o.m2_;
        } else {
            const double n = static_cast<double>(na + nb);
            const double delta = o.mean_ - mean_;
            mean_ += delta * static_cast<double>(nb) / n;
            m2_ += o.m2_ + delta * delta * static_cast<double>(na) * static_cast<double>(nb) / n;
            min = std::min(min, o.min);
            max = std::max(max, o.max);
        }
    }
    count += o.count;
    zeros += o.zeros;
    nans += o.nans;
    infs += o.infs;
}

// ---- Histogram -------------------------------------------------------------------------

Histogram Histogram::over(double lo, double hi, size_t bins) {
    if (bins == 0) throw std::invalid_argument("a histogram needs at least one bin");
    if (!std::isfinite(lo) || !std::isfinite(hi)) throw std::invalid_argument("a histogram's range must be finite");
    if (!(hi > lo)) {
        const double half = std::max(std::abs(lo), 1.0) / 1024;
        hi = lo + half;
        lo -= half;
    }
    Histogram h;
    h.lo = lo;
    h.hi = hi;
    h.counts.assign(bins, 0);
    return h;
}

uint64_t Histogram::total() const {
    uint64_t t = 0;
    for (uint64_t c : counts) t += c;
    return t;
}

uint64_t Histogram::peak() const { return counts.empty() ? 0 : *std::max_element(counts.begin(), counts.end()); }

void Histogram::add(std::span<const float> values) {
    const size_t n = counts.size();
    const double scale = static_cast<double>(n) / (hi - lo);
    for (float v : values) {
        const double x = v;
        if (!std::isfinite(x)) {
            ++non_finite;
        } else if (x < lo) {
            ++below;
        } else if (x > hi) {
            ++above;
        } else {
            // floor((x - lo) / w); x == hi (and rounding just below it) lands in the last bin.
            const size_t i = std::min(static_cast<size_t>((x - lo) * scale), n - 1);
            ++counts[i];
        }
    }
}

void Histogram::merge(const Histogram& o) {
    if (o.lo != lo || o.hi != hi || o.counts.size() != counts.size())
        throw std::invalid_argument("histograms over different ranges or bins cannot be merged");
    for (size_t i = 0; i < counts.size(); ++i) counts[i] += o.counts[i];
    below += o.below;
    above += o.above;
    non_finite += o.non_finite;
}

Histogram Histogram::rebinned(size_t bins) const {
    if (bins == 0) throw std::invalid_argument("a histogram needs at least one bin");
    const size_t n = counts.size();
    const size_t group = std::max<size_t>(1, (n + bins - 1) / bins);
    const size_t out = (n + group - 1) / group;
    Histogram h = *this;
    h.counts.assign(out, 0);
    for (size_t i = 0; i < n; ++i) h.counts[i / group] += counts[i];
    h.hi = lo + width() * static_cast<double>(out * group);  // a short last group keeps the same width
    return h;
}

Histogram Histogram::trimmed() const {
    size_t first = 0, last = counts.size();
    while (first < counts.size() && counts[first] == 0) ++first;
    while (last > first && counts[last - 1] == 0) --last;
    if (first == last) {  // nothing inside: keep the middle bin
        first = counts.size() / 2;
        last = first + 1;
    }
    Histogram h = *this;
    const double w = width();
    h.lo = lo + w * static_cast<double>(first);
    h.hi = lo + w * static_cast<double>(last);
    h.counts.assign(counts.begin() + static_cast<std::ptrdiff_t>(first), counts.begin() + static_cast<std::ptrdiff_t>(last));
    return h;
}

// ---- SymmetricHistogram ----------------------------------------------------------------

SymmetricHistogram::SymmetricHistogram(size_t bins) {
    if (bins == 0 || bins % 4 != 0) throw std::invalid_argument(fmt::format("a symmetric histogram needs a multiple of 4 bins, not {}", bins));
    counts_.assign(bins, 0);
}

void SymmetricHistogram::widen_to(double range) {
    const size_t n = counts_.size();
    while (range_ < range) {
        // Old bin j covers [-R + j w, -R + (j + 1) w); with R = n w / 2 the new bin of width
        // 2w holding it is n / 4 + j / 2: a pair of old bins per new one, all inside.
        std::vector<uint64_t> wider(n, 0);
        for (size_t j = 0; j < n; ++j) wider[n / 4 + j / 2] += counts_[j];
        counts_.swap(wider);
        range_ *= 2;
    }
}

void SymmetricHistogram::add(std::span<const float> values) {
    float largest = 0;
    for (float v : values)
        if (std::isfinite(v)) largest = std::max(largest, std::abs(v));
    // Strictly above: a value of exactly R would sit on the top edge (in the last bin now,
    // in a middle one after a doubling); the next power of two keeps every count exact.
    if (largest >= range_) widen_to(std::ldexp(1.0, std::ilogb(largest) + 1));
    const size_t n = counts_.size(), half = n / 2;
    const double scale = static_cast<double>(n) / (2 * range_);  // bins per unit
    for (float v : values) {
        if (!std::isfinite(v)) {
            ++non_finite_;
            continue;
        }
        // From the centre outwards, so that a value far smaller than R keeps its side of
        // zero (v + R would round to R): x >= 0 in bin half + floor(x / w), x < 0 in
        // half - ceil(-x / w).
        const double t = static_cast<double>(v) * scale;
        size_t i;
        if (t >= 0)
            i = std::min(half + static_cast<size_t>(t), n - 1);
        else
            i = half - std::min(half, static_cast<size_t>(std::ceil(-t)));
        ++counts_[i];
    }
}

void SymmetricHistogram::merge(const SymmetricHistogram& o) {
    if (o.counts_.size() != counts_.size()) throw std::invalid_argument("symmetric histograms with different bins cannot be merged");
    SymmetricHistogram other = o;
    other.widen_to(range_);
    widen_to(other.range_);
    for (size_t i = 0; i < counts_.size(); ++i) counts_[i] += other.counts_[i];
    non_finite_ += o.non_finite_;
}

Histogram SymmetricHistogram::histogram() const {
    Histogram h;
    h.lo = -range_;
    h.hi = range_;
    h.counts = counts_;
    h.non_finite = non_finite_;
    return h;
}

// ---- HeatMap ---------------------------------------------------------------------------

HeatMapBuilder::HeatMapBuilder(uint64_t rows, uint64_t cols, uint32_t max_rows, uint32_t max_cols)
    : rows_(rows), cols_(cols) {
    if (rows == 0 || cols == 0 || max_rows == 0 || max_cols == 0) throw std::invalid_argument("a heat map needs rows and columns");
    out_rows_ = static_cast<uint32_t>(std::min<uint64_t>(rows, max_rows));
    out_cols_ = static_cast<uint32_t>(std::min<uint64_t>(cols, max_cols));
    local_rows_ = out_rows_;
    auto col_cell = std::make_shared<std::vector<uint32_t>>(cols);
    for (uint64_t c = 0; c < cols; ++c) (*col_cell)[c] = static_cast<uint32_t>(c * out_cols_ / cols);
    col_cell_ = std::move(col_cell);
    const size_t cells = size_t{out_rows_} * out_cols_;
    sum_.assign(cells, 0);
    sum_sq_.assign(cells, 0);
    max_abs_.assign(cells, 0);
    n_.assign(cells, 0);
}

HeatMapBuilder HeatMapBuilder::part(uint64_t first_row, uint64_t end_row) const {
    if (first_row >= end_row || end_row > rows_) throw std::invalid_argument("heat map part outside the matrix");
    HeatMapBuilder p;  // the shape and the (shared) column map; its own cell rows only
    p.rows_ = rows_;
    p.cols_ = cols_;
    p.out_rows_ = out_rows_;
    p.out_cols_ = out_cols_;
    p.col_cell_ = col_cell_;
    const auto cell_row = [&](uint64_t r) { return static_cast<uint32_t>(r * out_rows_ / rows_); };
    p.first_cell_row_ = cell_row(first_row);
    p.local_rows_ = cell_row(end_row - 1) - p.first_cell_row_ + 1;
    const size_t cells = size_t{p.local_rows_} * out_cols_;
    p.sum_.assign(cells, 0);
    p.sum_sq_.assign(cells, 0);
    p.max_abs_.assign(cells, 0);
    p.n_.assign(cells, 0);
    return p;
}

void HeatMapBuilder::merge(const HeatMapBuilder& p) {
    if (p.rows_ != rows_ || p.cols_ != cols_ || p.out_rows_ != out_rows_ || p.out_cols_ != out_cols_ ||
        p.first_cell_row_ < first_cell_row_ || p.first_cell_row_ + p.local_rows_ > first_cell_row_ + local_rows_)
        throw std::invalid_argument("heat map parts of different matrices cannot be merged");
    const size_t base = size_t{p.first_cell_row_ - first_cell_row_} * out_cols_;
    for (size_t i = 0; i < p.sum_.size(); ++i) {
        sum_[base + i] += p.sum_[i];
        sum_sq_[base + i] += p.sum_sq_[i];
        max_abs_[base + i] = std::max(max_abs_[base + i], p.max_abs_[i]);
        n_[base + i] += p.n_[i];
    }
}

void HeatMapBuilder::add_rows(uint64_t first_row, std::span<const float> values) {
    if (values.size() % cols_ != 0 || first_row + values.size() / cols_ > rows_)
        throw std::invalid_argument("heat map rows outside the matrix");
    const uint64_t n_rows = values.size() / cols_;
    const uint32_t* col_cell = col_cell_->data();
    for (uint64_t r = 0; r < n_rows; ++r) {
        const uint64_t cell_row = (first_row + r) * out_rows_ / rows_;
        if (cell_row < first_cell_row_ || cell_row >= uint64_t{first_cell_row_} + local_rows_)
            throw std::invalid_argument("heat map rows outside this part");
        const size_t base = static_cast<size_t>(cell_row - first_cell_row_) * out_cols_;
        const float* row = values.data() + r * cols_;
        for (uint64_t c = 0; c < cols_; ++c) {
            const float x = row[c];
            if (!std::isfinite(x)) continue;
            const size_t cell = base + col_cell[c];
            sum_[cell] += x;
            sum_sq_[cell] += static_cast<double>(x) * x;
            max_abs_[cell] = std::max(max_abs_[cell], std::abs(x));
            ++n_[cell];
        }
    }
}

HeatMap HeatMapBuilder::finish() const {
    if (first_cell_row_ != 0 || local_rows_ != out_rows_) throw std::logic_error("finish() is for the whole heat map, not a part");
    HeatMap h;
    h.rows = out_rows_;
    h.cols = out_cols_;
    const size_t cells = sum_.size();
    const float nan = std::numeric_limits<float>::quiet_NaN();
    h.mean.assign(cells, nan);
    h.rms.assign(cells, nan);
    h.max_abs.assign(cells, nan);
    for (size_t i = 0; i < cells; ++i) {
        if (!n_[i]) continue;
        const double n = static_cast<double>(n_[i]);
        h.mean[i] = static_cast<float>(sum_[i] / n);
        h.rms[i] = static_cast<float>(std::sqrt(sum_sq_[i] / n));
        h.max_abs[i] = max_abs_[i];
    }
    return h;
}

// ---- Ticks -----------------------------------------------------------------------------

Ticks nice_ticks(double lo, double hi, int max_ticks) {
    Ticks t;
    if (!std::isfinite(lo) || !std::isfinite(hi) || hi < lo || max_ticks < 1) return t;
    const double span = hi - lo;
    // Multiples of `step` inside [lo, hi], allowing for the rounding of lo / step and hi / step.
    auto first_of = [&](double step) { return std::ceil(lo / step - 1e-9); };
    auto last_of = [&](double step) { return std::floor(hi / step + 1e-9); };
    if (span == 0) {
        t.values.push_back(lo);
        t.step = lo == 0 ? 1 : std::pow(10.0, std::floor(std::log10(std::abs(lo))));
        return t;
    }
    // The smallest 1/2/5 x 10^k step giving at most max_ticks multiples inside [lo, hi],
    // searched upwards from a decade below span / max_ticks.
    double decade = std::pow(10.0, std::floor(std::log10(span / max_ticks)) - 1);
    double step = 0;
    for (int guard = 0; guard < 40 && step == 0; ++guard, decade *= 10)
        for (double f : {1.0, 2.0, 5.0})
            if (last_of(decade * f) - first_of(decade * f) + 1 <= max_ticks) {
                step = decade * f;
                break;
            }
    if (step == 0) return t;
    t.step = step;
    for (double k = first_of(step), last = last_of(step); k <= last; ++k) {
        double v = k * step;
        if (std::abs(v) < step * 1e-9) v = 0;  // no "-0" or 1e-17 at zero
        t.values.push_back(v);
    }
    return t;
}

std::string tick_label(double value, double step) {
    if (value == 0) return "0";
    if (!(step > 0) || !std::isfinite(step) || !std::isfinite(value)) return fmt::format("{:g}", value);
    if (step < 1e-4 || std::abs(value) >= 1e15) {
        // Exponent form with the significant digits that tell steps apart.
        const int digits = static_cast<int>(std::floor(std::log10(std::abs(value))) - std::floor(std::log10(step))) + 1;
        return fmt::format("{:.{}g}", value, std::clamp(digits, 1, 17));
    }
    // Fixed form with as many decimals as the step has (0.25: 2, 0.5: 1, 20: 0).
    int decimals = 0;
    for (double scaled = step; decimals < 12 && std::abs(scaled - std::round(scaled)) > 1e-9 * std::max(1.0, scaled); scaled *= 10)
        ++decimals;
    return fmt::format("{:.{}f}", value, decimals);
}

}  // namespace viewer
