// The numbers behind gguf-view's plots, with no drawing in them: statistics of values,
// histograms (fixed range, and one symmetric about zero that widens itself for errors),
// heat maps averaged down from a matrix, and axis ticks.
#pragma once

#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <vector>

namespace viewer {

// Count, extremes, mean and spread of a stream of floats. NaN and Inf are counted apart and
// kept out of everything else; min/max/mean/stddev are of the finite values (0 without any).
struct ValueStats {
    uint64_t count = 0;  // every value, NaN and Inf included
    uint64_t zeros = 0;  // +0 and -0
    uint64_t nans = 0;
    uint64_t infs = 0;   // +Inf and -Inf
    double min = 0, max = 0;

    uint64_t finite() const { return count - nans - infs; }
    double mean() const { return mean_; }
    double stddev() const;  // population standard deviation

    void add(std::span<const float> values);
    // Chan's combination of two partial results: the same figures (to rounding) as adding
    // both streams to one.
    void merge(const ValueStats& other);

private:
    double mean_ = 0;
    double m2_ = 0;  // sum of squared deviations from the mean
};

// Counts of values in `counts.size()` equal bins over [lo, hi]: bin i holds
// lo + i w <= x < lo + (i + 1) w (w = (hi - lo) / bins), the last one x == hi too. Values
// outside count in below/above, NaN and Inf in non_finite.
struct Histogram {
    double lo = 0, hi = 1;
    std::vector<uint64_t> counts;
    uint64_t below = 0, above = 0, non_finite = 0;

    // `bins` >= 1 bins over [lo, hi]. A range of one value (hi <= lo: a constant tensor)
    // becomes lo +- max(|lo|, 1) / 1024, so the value sits in the middle bin.
    static Histogram over(double lo, double hi, size_t bins);

    double width() const { return (hi - lo) / static_cast<double>(counts.size()); }
    double bin_lo(size_t i) const { return lo + width() * static_cast<double>(i); }
    uint64_t total() const;  // values inside the bins
    uint64_t peak() const;   // the largest count

    void add(std::span<const float> values);
    void merge(const Histogram& other);  // same range and bins; throws std::invalid_argument otherwise

    // The same counts in `bins` coarser bins: groups of ceil(size / bins) neighbours (the
    // last group may be smaller; the range grows to keep every group the same width).
    Histogram rebinned(size_t bins) const;
    // Without the empty bins at either end (at least one bin stays).
    Histogram trimmed() const;
};

// A histogram of values that may be anywhere, symmetric about zero: `bins` bins over
// [-R, R), R a power of two above every magnitude added (|x| < R; kMinRange at least). A
// value of R or more doubles R (merging neighbouring bins in pairs) until it is inside, so
// the counts stay exact in one pass, whatever the spread and whatever the order values and
// merges come in. bins is a multiple of 4, so a doubling maps every old bin into exactly
// one new one.
class SymmetricHistogram {
public:
    static constexpr double kMinRange = 0x1p-40;  // R before any larger value arrives

    explicit SymmetricHistogram(size_t bins = 4096);
    void add(std::span<const float> values);  // NaN and Inf count in non_finite
    void merge(const SymmetricHistogram& other);  // same bins; the wider range wins

    double range() const { return range_; }
    uint64_t non_finite() const { return non_finite_; }
    const std::vector<uint64_t>& counts() const { return counts_; }
    Histogram histogram() const;  // as a Histogram over [-R, R]

private:
    void widen_to(double range);  // doubles R until it is at least `range`
    double range_ = kMinRange;
    std::vector<uint64_t> counts_;
    uint64_t non_finite_ = 0;
};

// A matrix of rows x cols values (row-major: the GGUF row, ne[0] values, is one row)
// reduced to out_rows x out_cols cells (min(rows, max_rows) x min(cols, max_cols)): matrix
// row r belongs to cell row floor(r * out_rows / rows), column c to cell column
// floor(c * out_cols / cols). Each cell keeps the mean, the root mean square and the
// largest magnitude of its finite values (NaN where it has none).
struct HeatMap {
    uint32_t rows = 0, cols = 0;          // cells
    std::vector<float> mean, rms, max_abs;  // rows x cols each, row-major
};

class HeatMapBuilder {
public:
    HeatMapBuilder(uint64_t rows, uint64_t cols, uint32_t max_rows, uint32_t max_cols);
    // Whole matrix rows [first_row, first_row + values.size() / cols). Not thread-safe:
    // threads each fill a part() and merge the parts in order.
    void add_rows(uint64_t first_row, std::span<const float> values);
    // An empty builder for rows [first_row, end_row) only, holding just the cell rows they
    // touch: one per range of a parallel pass, merged into the whole in range order, so
    // the sums are the same bits for any thread count.
    HeatMapBuilder part(uint64_t first_row, uint64_t end_row) const;
    void merge(const HeatMapBuilder& part);
    HeatMap finish() const;
    uint32_t cell_rows() const { return out_rows_; }
    uint32_t cell_cols() const { return out_cols_; }

private:
    uint32_t first_cell_row_ = 0;  // a part's first cell row; its arrays hold local_rows_ cell rows
    uint32_t local_rows_ = 0;
    HeatMapBuilder() = default;
    uint64_t rows_ = 0, cols_ = 0;
    uint32_t out_rows_ = 0, out_cols_ = 0;
    std::shared_ptr<const std::vector<uint32_t>> col_cell_;  // matrix column -> cell column, shared by parts
    std::vector<double> sum_, sum_sq_;
    std::vector<float> max_abs_;
    std::vector<uint64_t> n_;
};

// Tick positions for an axis over [lo, hi]: every multiple of a step of 1, 2 or 5 x 10^k
// inside the range, the smallest such step that gives at most max_ticks ticks (at least
// one tick when lo <= hi). Empty when the range is not finite.
struct Ticks {
    double step = 0;
    std::vector<double> values;
};
Ticks nice_ticks(double lo, double hi, int max_ticks);
// A tick's label with as many decimals as the step needs ("0.25", "-3", "1e-05" for tiny
// or huge values).
std::string tick_label(double value, double step);

}  // namespace viewer
