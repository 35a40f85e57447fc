// gguf-view's model layer (viewer_model): value statistics, histograms, heat maps, axis
// ticks, the analyses over a tensor's data, the document tables, the background worker and
// the File menu's folder listing and recent files. Expected figures come from independent
// oracles computed here (whole tensors dequantized with quant::dequantize, sums in long
// double, bins counted by hand over sorted edges), never from the implementation's output.
#include <doctest/doctest.h>

#include <fmt/format.h>

#include <algorithm>
#include <cctype>
#include <any>
#include <atomic>
#include <chrono>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <functional>
#include <limits>
#include <map>
#include <mutex>
#include <numeric>
#include <optional>
#include <set>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include "fixtures.h"
#include "gguf/arch.h"
#include "gguf/error.h"
#include "gguf/file.h"
#include "gguf/model.h"
#include "gguf/names.h"
#include "gguf/render.h"
#include "gguf/summary.h"
#include "gguf/types.h"
#include "gguf/writer.h"
#include "kernels/error_stats.h"
#include "quant/executor.h"
#include "quant/imatrix.h"
#include "quant/quant.h"
#include "support.h"
#include "viewer/analysis.h"
#include "viewer/document.h"
#include "viewer/files.h"
#include "viewer/stats.h"
#include "viewer/worker.h"

using gguf::TypeId;
using gguf::fixtures::DemoOptions;
using namespace std::chrono_literals;

namespace {

constexpr float kNaN = std::numeric_limits<float>::quiet_NaN();
constexpr float kInf = std::numeric_limits<float>::infinity();

// ---------------------------------------------------------------- numeric helpers

// |got - want| <= rel * max(|got|, |want|) + abs; equal infinities and two NaNs match.
bool close(double got, double want, double rel, double abs = 0) {
    if (std::isnan(got) || std::isnan(want)) return std::isnan(got) && std::isnan(want);
    if (got == want) return true;
    return std::fabs(got - want) <= rel * std::max(std::fabs(got), std::fabs(want)) + abs;
}

#define CHECK_CLOSE(got, want, rel)                                                                   \
    do {                                                                                              \
        const double g_ = static_cast<double>(got), w_ = static_cast<double>(want);                  \
        CHECK_MESSAGE(close(g_, w_, (rel)), fmt::format("{} = {:.17g}, want {:.17g}", #got, g_, w_)); \
    } while (0)

#define CHECK_CLOSE_ABS(got, want, rel, abs)                                                                 \
    do {                                                                                                     \
        const double g_ = static_cast<double>(got), w_ = static_cast<double>(want);                         \
        CHECK_MESSAGE(close(g_, w_, (rel), (abs)), fmt::format("{} = {:.17g}, want {:.17g}", #got, g_, w_)); \
    } while (0)

struct Rng {
    uint64_t state;
    uint64_t next() {
        uint64_t z = (state += 0x9e3779b97f4a7c15ull);
        z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
        z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
        return z ^ (z >> 31);
    }
    double uniform() { return static_cast<double>(next() >> 11) * 0x1.0p-53; }  // [0, 1)
    float uniform(double lo, double hi) { return static_cast<float>(lo + (hi - lo) * uniform()); }
};

// Statistics computed the plain way: two passes, long double.
struct DirectStats {
    uint64_t count = 0, zeros = 0, nans = 0, infs = 0, finite = 0;
    double min = 0, max = 0;
    long double mean = 0, stddev = 0;
};

DirectStats direct_stats(std::span<const float> v) {
    DirectStats d;
    long double sum = 0;
    bool any = false;
    for (float x : v) {
        ++d.count;
        if (std::isnan(x)) {
            ++d.nans;
            continue;
        }
        if (std::isinf(x)) {
            ++d.infs;
            continue;
        }
        if (x == 0) ++d.zeros;
        ++d.finite;
        if (!any || x < d.min) d.min = x;
        if (!any || x > d.max) d.max = x;
        any = true;
        sum += x;
    }
    if (d.finite) {
        d.mean = sum / static_cast<long double>(d.finite);
        long double m2 = 0;
        for (float x : v)
            if (std::isfinite(x)) m2 += (x - d.mean) * (x - d.mean);
        d.stddev = std::sqrt(m2 / static_cast<long double>(d.finite));
    }
    return d;
}

// Counts, mean and spread of `s` equal the direct computation; mean and stddev to `rel` of
// the spread (a mean near zero has no meaningful relative error of its own).
void check_stats(const viewer::ValueStats& s, const DirectStats& d, double rel) {
    CHECK(s.count == d.count);
    CHECK(s.zeros == d.zeros);
    CHECK(s.nans == d.nans);
    CHECK(s.infs == d.infs);
    CHECK(s.finite() == d.finite);
    CHECK(s.min == d.min);
    CHECK(s.max == d.max);
    const double scale = static_cast<double>(std::fabs(d.mean) + d.stddev);
    CHECK_CLOSE_ABS(s.mean(), d.mean, rel, rel * scale);
    CHECK_CLOSE_ABS(s.stddev(), d.stddev, rel, rel * scale);
}

// Bin counts by hand: sort the values, count each [edge_i, edge_i+1) with binary search
// over edges lo + i (hi - lo) / bins (exact for the dyadic ranges used here), x == hi in the
// last bin.
struct HandCounts {
    std::vector<uint64_t> counts;
    uint64_t below = 0, above = 0, non_finite = 0;
};
HandCounts count_by_hand(std::vector<float> values, double lo, double hi, size_t bins) {
    HandCounts h;
    h.counts.assign(bins, 0);
    std::vector<double> finite;
    for (float x : values) {
        if (!std::isfinite(x)) ++h.non_finite;
        else finite.push_back(x);
    }
    std::sort(finite.begin(), finite.end());
    std::vector<double> edges(bins + 1);
    for (size_t i = 0; i <= bins; ++i) edges[i] = lo + (hi - lo) * static_cast<double>(i) / static_cast<double>(bins);
    for (double x : finite) {
        if (x < lo) {
            ++h.below;
        } else if (x > hi) {
            ++h.above;
        } else if (x == hi) {
            ++h.counts[bins - 1];
        } else {
            const size_t i = static_cast<size_t>(std::upper_bound(edges.begin(), edges.end(), x) - edges.begin()) - 1;
            ++h.counts[std::min(i, bins - 1)];
        }
    }
    return h;
}

bool is_power_of_two(double x) {
    int e = 0;
    return x > 0 && std::frexp(x, &e) == 0.5;
}

// The cells of a heat map the plain way: every matrix value into the cell the header names
// (row r in cell row floor(r out_rows / rows), column c in floor(c out_cols / cols)), sums in
// long double over the finite values.
struct HeatOracle {
    uint32_t rows = 0, cols = 0;
    std::vector<double> mean, rms, max_abs;
};
HeatOracle heat_oracle(std::span<const float> m, uint64_t rows, uint64_t cols, uint32_t out_rows, uint32_t out_cols) {
    const size_t cells = size_t{out_rows} * out_cols;
    std::vector<long double> sum(cells, 0), sq(cells, 0);
    std::vector<double> mx(cells, 0);
    std::vector<uint64_t> n(cells, 0);
    for (uint64_t r = 0; r < rows; ++r)
        for (uint64_t c = 0; c < cols; ++c) {
            const float x = m[r * cols + c];
            if (!std::isfinite(x)) continue;
            const size_t k = static_cast<size_t>(r * out_rows / rows) * out_cols + static_cast<size_t>(c * out_cols / cols);
            sum[k] += x;
            sq[k] += static_cast<long double>(x) * x;
            mx[k] = std::max(mx[k], static_cast<double>(std::fabs(x)));
            ++n[k];
        }
    HeatOracle h;
    h.rows = out_rows;
    h.cols = out_cols;
    for (size_t k = 0; k < cells; ++k) {
        const bool none = n[k] == 0;
        h.mean.push_back(none ? std::nan("") : static_cast<double>(sum[k] / n[k]));
        h.rms.push_back(none ? std::nan("") : static_cast<double>(std::sqrt(sq[k] / n[k])));
        h.max_abs.push_back(none ? std::nan("") : mx[k]);
    }
    return h;
}

void check_heat(const viewer::HeatMap& got, const HeatOracle& want) {
    REQUIRE(got.rows == want.rows);
    REQUIRE(got.cols == want.cols);
    const size_t cells = size_t{want.rows} * want.cols;
    REQUIRE(got.mean.size() == cells);
    REQUIRE(got.rms.size() == cells);
    REQUIRE(got.max_abs.size() == cells);
    size_t bad = 0;
    for (size_t k = 0; k < cells && bad < 5; ++k) {
        CAPTURE(k);
        // Floats of figures kept in double: a few float ulps, and for a mean near zero a
        // margin relative to the cell's magnitude.
        const double scale = std::isnan(want.rms[k]) ? 0 : want.rms[k];
        const bool ok = close(got.mean[k], want.mean[k], 1e-6, 1e-9 * scale) && close(got.rms[k], want.rms[k], 1e-6) &&
                        close(got.max_abs[k], want.max_abs[k], 0);
        if (!ok) ++bad;
        CHECK_MESSAGE(ok, fmt::format("cell {} ({}, {}): mean {} rms {} max_abs {}, want {} {} {}", k, k / want.cols, k % want.cols,
                                      got.mean[k], got.rms[k], got.max_abs[k], want.mean[k], want.rms[k], want.max_abs[k]));
    }
}

// ---------------------------------------------------------------- fixture files

std::vector<float> dequantized(const gguf::Model& m, const gguf::Model::Tensor& t) {
    std::vector<float> v(t.info->n_elements);
    quant::dequantize(t.info->type, m.tensor_data(t), v);
    return v;
}

struct DemoFile {
    test::TempDir dir;
    std::filesystem::path path;
    gguf::Model model;
    explicit DemoFile(const DemoOptions& o, const std::string& name = "model.gguf")
        : path(dir / name), model((gguf::fixtures::demo_model(o).write(path), gguf::Model::open(path))) {}
    const gguf::Model::Tensor& tensor(std::string_view name) const {
        const gguf::Model::Tensor* t = model.find_tensor(name);
        REQUIRE_MESSAGE(t != nullptr, std::string(name));
        return *t;
    }
};

// The same model with every weight in f32 (mixed types off: they take precedence).
DemoOptions f32_options(DemoOptions o) {
    o.mixed_types = false;
    o.f32_weights = true;
    return o;
}

void add_f32(gguf::Writer& w, std::string name, std::vector<uint64_t> shape, std::vector<float> values) {
    w.add_tensor(std::move(name), TypeId::F32, std::move(shape), [values](gguf::ByteSink& out) {
        std::vector<uint8_t> b(values.size() * 4);
        std::memcpy(b.data(), values.data(), b.size());
        out.write(b);
    });
}

// A model of a few hand-made tensors.
struct CustomFile {
    test::TempDir dir;
    std::filesystem::path path;
    gguf::Model model;
    explicit CustomFile(const std::function<void(gguf::Writer&)>& fill)
        : path(dir / "custom.gguf"), model(make(path, fill)) {}
    static gguf::Model make(const std::filesystem::path& p, const std::function<void(gguf::Writer&)>& fill) {
        gguf::Writer w;
        w.set("general.architecture", gguf::OwnedValue::string("llama"));
        fill(w);
        w.write(p);
        return gguf::Model::open(p);
    }
    const gguf::Model::Tensor& tensor(std::string_view name) const {
        const gguf::Model::Tensor* t = model.find_tensor(name);
        REQUIRE_MESSAGE(t != nullptr, std::string(name));
        return *t;
    }
};

// The round trip the plain way: dequantize, quantize, dequantize, sums in long double.
struct ErrorOracle {
    uint64_t values = 0;
    double sum_sq_signal = 0, sum_sq_error = 0, max_abs_error = 0, min_diff = 0, max_diff = 0;
};
ErrorOracle error_oracle(std::span<const float> x, std::span<const float> y) {
    ErrorOracle o;
    long double ss = 0, se = 0;
    o.min_diff = std::numeric_limits<double>::infinity();
    o.max_diff = -o.min_diff;
    for (size_t i = 0; i < x.size(); ++i) {
        const double e = static_cast<double>(x[i]) - static_cast<double>(y[i]);
        ss += static_cast<long double>(x[i]) * x[i];
        se += static_cast<long double>(e) * e;
        o.max_abs_error = std::max(o.max_abs_error, std::fabs(e));
        o.min_diff = std::min(o.min_diff, e);
        o.max_diff = std::max(o.max_diff, e);
    }
    o.values = x.size();
    o.sum_sq_signal = static_cast<double>(ss);
    o.sum_sq_error = static_cast<double>(se);
    return o;
}
ErrorOracle round_trip_oracle(const gguf::Model& m, const gguf::Model::Tensor& t, TypeId target, std::span<const float> importance) {
    const std::vector<float> x = dequantized(m, t);
    const int64_t ne0 = static_cast<int64_t>(t.info->shape[0]);
    std::vector<uint8_t> q(quant::row_bytes(target, ne0) * (x.size() / static_cast<size_t>(ne0)));
    quant::quantize(target, x, ne0, importance, q);
    std::vector<float> y(x.size());
    quant::dequantize(target, q, y);
    return error_oracle(x, y);
}

void check_error(const viewer::ErrorAnalysis& a, const ErrorOracle& o) {
    CHECK(a.stats.values == o.values);
    CHECK_CLOSE(a.stats.sum_sq_signal, o.sum_sq_signal, 1e-12);
    CHECK_CLOSE(a.stats.sum_sq_error, o.sum_sq_error, 1e-12);
    CHECK_CLOSE(a.stats.rmse(), std::sqrt(o.sum_sq_error / static_cast<double>(o.values)), 1e-12);
    CHECK_CLOSE(a.stats.max_abs_error, o.max_abs_error, 1e-12);
    // The histogram of original - result: every value in a bin, trimmed to the non-empty ones.
    const viewer::Histogram& h = a.histogram;
    CHECK(h.total() == o.values);
    CHECK(h.below == 0);
    CHECK(h.above == 0);
    CHECK(h.non_finite == 0);
    REQUIRE(!h.counts.empty());
    CHECK(h.counts.front() > 0);
    CHECK(h.counts.back() > 0);
    CHECK(h.lo <= o.min_diff + 1e-9 * h.width());
    CHECK(h.hi >= o.max_diff - 1e-9 * h.width());
    // The errors' histogram is the symmetric one: within [-R, R), R the smallest power of
    // two above every error's magnitude (as a float, the histogram's values).
    double R = viewer::SymmetricHistogram::kMinRange;
    while (R <= static_cast<double>(static_cast<float>(o.max_abs_error))) R *= 2;
    CHECK_MESSAGE(h.lo >= -R, fmt::format("histogram from {} for errors within +-{}", h.lo, o.max_abs_error));
    CHECK_MESSAGE(h.hi <= R, fmt::format("histogram to {} for errors within +-{}", h.hi, o.max_abs_error));
}

template <class F> bool wait_for(F cond, std::chrono::milliseconds timeout = 10s) {
    const auto end = std::chrono::steady_clock::now() + timeout;
    while (!cond()) {
        if (std::chrono::steady_clock::now() > end) return false;
        std::this_thread::sleep_for(1ms);
    }
    return true;
}

std::string lower(std::string_view s) {
    std::string o(s);
    for (char& c : o) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    return o;
}
bool contains_ci(std::string_view text, std::string_view part) { return lower(text).find(lower(part)) != std::string::npos; }

}  // namespace

// ================================================================ 1. ValueStats

TEST_CASE("value statistics count zeros, NaN and Inf apart and match a direct two-pass computation") {
    Rng rng{11};
    std::vector<float> v;
    for (int i = 0; i < 10000; ++i) v.push_back(rng.uniform(0.5, 3.5));
    v.insert(v.begin() + 17, {0.0f, -0.0f, 0.0f});
    v.insert(v.begin() + 500, {kNaN, kInf, -kInf, kNaN, -7.25f, 9.5f});
    v.push_back(kNaN);
    viewer::ValueStats s;
    s.add(v);
    const DirectStats d = direct_stats(v);
    REQUIRE(d.count == 10010);
    REQUIRE(d.zeros == 3);
    REQUIRE(d.nans == 3);
    REQUIRE(d.infs == 2);
    CHECK(s.min == -7.25);
    CHECK(s.max == 9.5);
    check_stats(s, d, 1e-11);

    SUBCASE("small exact example: population standard deviation") {
        viewer::ValueStats t;
        const float x[] = {1, 2, 3, 4};
        t.add(x);
        CHECK(t.count == 4);
        CHECK(t.mean() == 2.5);
        CHECK_CLOSE(t.stddev(), std::sqrt(1.25), 1e-15);  // not the sample one, sqrt(5/3)
        CHECK(t.min == 1);
        CHECK(t.max == 4);
        CHECK(t.zeros == 0);
    }
    SUBCASE("adding in many pieces gives the figures of one add") {
        viewer::ValueStats t;
        for (size_t i = 0; i < v.size(); i += 999) t.add(std::span<const float>(v).subspan(i, std::min<size_t>(999, v.size() - i)));
        check_stats(t, d, 1e-12);
    }
}

TEST_CASE("NaN and Inf stay out of min, max, mean and stddev, even when they come first") {
    viewer::ValueStats s;
    const float a[] = {kNaN, kInf, -kInf};
    s.add(a);
    CHECK(s.count == 3);
    CHECK(s.finite() == 0);
    CHECK(s.nans == 1);
    CHECK(s.infs == 2);
    CHECK(s.min == 0);
    CHECK(s.max == 0);
    CHECK(s.mean() == 0);
    CHECK(s.stddev() == 0);
    const float b[] = {5, 7};
    s.add(b);
    CHECK(s.count == 5);
    CHECK(s.finite() == 2);
    CHECK(s.min == 5);  // not the 0 of "no finite values yet"
    CHECK(s.max == 7);
    CHECK(s.mean() == 6);
    CHECK(s.stddev() == 1);

    viewer::ValueStats neg;
    const float c[] = {kNaN, -3, -5, kInf};
    neg.add(c);
    CHECK(neg.min == -5);
    CHECK(neg.max == -3);  // not 0
    CHECK(neg.mean() == -4);
}

TEST_CASE("empty value statistics are all zeros") {
    viewer::ValueStats s;
    CHECK(s.count == 0);
    CHECK(s.zeros == 0);
    CHECK(s.nans == 0);
    CHECK(s.infs == 0);
    CHECK(s.finite() == 0);
    CHECK(s.min == 0);
    CHECK(s.max == 0);
    CHECK(s.mean() == 0);
    CHECK(s.stddev() == 0);
    s.add(std::span<const float>{});
    CHECK(s.count == 0);
    CHECK(s.mean() == 0);
    CHECK(s.stddev() == 0);
    viewer::ValueStats e2;
    s.merge(e2);
    CHECK(s.count == 0);
    CHECK(s.min == 0);
    CHECK(s.max == 0);
    CHECK(s.mean() == 0);
    CHECK(s.stddev() == 0);
}

TEST_CASE("merging the statistics of two halves equals adding all the values at once (to 1e-12)") {
    Rng rng{5};
    std::vector<float> v;
    for (int i = 0; i < 20000; ++i) v.push_back(rng.uniform(-1.0, 4.0));
    v[100] = kNaN;
    v[15000] = -kInf;
    v[7] = 0.0f;
    viewer::ValueStats all;
    all.add(v);
    for (size_t cut : {size_t{0}, size_t{1}, size_t{3333}, size_t{10000}, v.size() - 1, v.size()}) {
        CAPTURE(cut);
        viewer::ValueStats a, b;
        a.add(std::span<const float>(v).first(cut));
        b.add(std::span<const float>(v).subspan(cut));
        viewer::ValueStats ab = a;
        ab.merge(b);
        viewer::ValueStats ba = b;
        ba.merge(a);
        for (const viewer::ValueStats* m : {&ab, &ba}) {
            CHECK(m->count == all.count);
            CHECK(m->zeros == all.zeros);
            CHECK(m->nans == all.nans);
            CHECK(m->infs == all.infs);
            CHECK(m->min == all.min);
            CHECK(m->max == all.max);
            CHECK_CLOSE(m->mean(), all.mean(), 1e-12);
            CHECK_CLOSE(m->stddev(), all.stddev(), 1e-12);
        }
    }
    check_stats(all, direct_stats(v), 1e-11);

    SUBCASE("a part with no finite values leaves min and max alone") {
        viewer::ValueStats f, nf;
        const float finite[] = {2, 3, 4};
        const float non_finite[] = {kNaN, kInf};
        f.add(finite);
        nf.add(non_finite);
        viewer::ValueStats x = nf;
        x.merge(f);
        viewer::ValueStats y = f;
        y.merge(nf);
        for (const viewer::ValueStats* m : {&x, &y}) {
            CHECK(m->count == 5);
            CHECK(m->finite() == 3);
            CHECK(m->min == 2);
            CHECK(m->max == 4);
            CHECK(m->mean() == 3);
            CHECK_CLOSE(m->stddev(), std::sqrt(2.0 / 3.0), 1e-15);
        }
    }
}

// ================================================================ 2. Histogram

TEST_CASE("a histogram puts a value on a bin edge in the upper bin, hi in the last, and counts outside and non-finite apart") {
    viewer::Histogram h = viewer::Histogram::over(-1, 1, 8);  // width 0.25
    CHECK(h.lo == -1);
    CHECK(h.hi == 1);
    REQUIRE(h.counts.size() == 8);
    CHECK(h.width() == 0.25);
    CHECK(h.bin_lo(3) == -0.25);
    const float v[] = {-1.0f, -0.9999f, -0.75f, std::nextafter(-0.5f, -1.0f), -0.5f, -0.25f, 0.0f, -0.0f,
                       0.25f, std::nextafter(0.5f, 0.0f), 0.5f, 0.75f, 0.999f, 1.0f,
                       -1.0001f, 1.0001f, kNaN, kInf, -kInf};
    h.add(v);
    const std::vector<uint64_t> want = {2, 2, 1, 1, 2, 2, 1, 3};
    CHECK(h.counts == want);
    CHECK(h.below == 1);
    CHECK(h.above == 1);
    CHECK(h.non_finite == 3);
    CHECK(h.total() == 14);
    CHECK(h.peak() == 3);
}

TEST_CASE("histogram counts equal counts by hand over sorted values") {
    Rng rng{3};
    std::vector<float> v;
    for (int i = 0; i < 50000; ++i) v.push_back(rng.uniform(-2.5, 2.5));
    for (int k = -32; k <= 32; ++k) v.push_back(static_cast<float>(k) / 16.0f);  // every edge, and lo and hi
    v.push_back(kNaN);
    for (size_t bins : {size_t{1}, size_t{7}, size_t{64}}) {
        CAPTURE(bins);
        viewer::Histogram h = viewer::Histogram::over(-2, 2, bins);
        for (size_t i = 0; i < v.size(); i += 4096) h.add(std::span<const float>(v).subspan(i, std::min<size_t>(4096, v.size() - i)));
        if (bins == 7) {
            // Edges are not dyadic: compare only bins whose edges no value lies near.
            const HandCounts c = count_by_hand(v, -2, 2, bins);
            CHECK(h.below == c.below);
            CHECK(h.above == c.above);
            CHECK(h.non_finite == c.non_finite);
            CHECK(h.total() == std::accumulate(c.counts.begin(), c.counts.end(), uint64_t{0}));
            continue;
        }
        const HandCounts c = count_by_hand(v, -2, 2, bins);
        CHECK(h.counts == c.counts);
        CHECK(h.below == c.below);
        CHECK(h.above == c.above);
        CHECK(h.non_finite == c.non_finite);
    }
}

TEST_CASE("Histogram::over with hi <= lo widens by max(|lo|, 1) / 1024 so a constant sits in the middle bin") {
    struct Case {
        double lo, hi;
        float value;
        size_t bins;
    };
    for (const Case& c : {Case{3, 3, 3, 5}, Case{0, 0, 0, 3}, Case{-0.5, -0.5, -0.5f, 101}, Case{-2048, -2048, -2048, 9},
                          Case{5, 4, 5, 3}, Case{0.25, 0.25, 0.25f, 1}}) {
        CAPTURE(c.lo);
        CAPTURE(c.hi);
        CAPTURE(c.bins);
        viewer::Histogram h = viewer::Histogram::over(c.lo, c.hi, c.bins);
        const double d = std::max(std::fabs(c.lo), 1.0) / 1024;
        CHECK(h.lo == c.lo - d);
        CHECK(h.hi == c.lo + d);
        REQUIRE(h.counts.size() == c.bins);
        const float x[] = {c.value, c.value, c.value};
        h.add(x);
        CHECK(h.counts[c.bins / 2] == 3);
        CHECK(h.total() == 3);
        CHECK(h.below == 0);
        CHECK(h.above == 0);
    }
}

TEST_CASE("merging histograms adds every count; a different range or bin count throws std::invalid_argument") {
    Rng rng{8};
    std::vector<float> a, b;
    for (int i = 0; i < 3000; ++i) a.push_back(rng.uniform(-1.2, 1.2));
    for (int i = 0; i < 2000; ++i) b.push_back(rng.uniform(-0.7, 1.5));
    a.push_back(kNaN);
    b.push_back(-kInf);
    viewer::Histogram ha = viewer::Histogram::over(-1, 1, 16), hb = viewer::Histogram::over(-1, 1, 16);
    ha.add(a);
    hb.add(b);
    ha.merge(hb);
    std::vector<float> all = a;
    all.insert(all.end(), b.begin(), b.end());
    const HandCounts c = count_by_hand(all, -1, 1, 16);
    CHECK(ha.counts == c.counts);
    CHECK(ha.below == c.below);
    CHECK(ha.above == c.above);
    CHECK(ha.non_finite == 2);
    CHECK(ha.lo == -1);
    CHECK(ha.hi == 1);

    viewer::Histogram base = viewer::Histogram::over(-1, 1, 16);
    CHECK_THROWS_AS(base.merge(viewer::Histogram::over(-1, 1, 8)), std::invalid_argument);
    CHECK_THROWS_AS(base.merge(viewer::Histogram::over(-1, 2, 16)), std::invalid_argument);
    CHECK_THROWS_AS(base.merge(viewer::Histogram::over(0, 1, 16)), std::invalid_argument);
    CHECK(base.total() == 0);
}

TEST_CASE("rebinned histograms keep every count and map groups of ceil(size / bins) neighbours, the range growing to fit") {
    viewer::Histogram h = viewer::Histogram::over(0, 10, 10);  // width 1
    std::vector<float> v;
    for (int i = 0; i < 10; ++i)
        for (int k = 0; k <= i; ++k) v.push_back(static_cast<float>(i) + 0.5f);  // bin i holds i + 1
    v.insert(v.end(), {-1.0f, -2.0f, 11.0f, kNaN});
    h.add(v);
    REQUIRE(h.counts == std::vector<uint64_t>{1, 2, 3, 4, 5, 6, 7, 8, 9, 10});

    struct Case {
        size_t bins;
        std::vector<uint64_t> counts;
        double hi;
    };
    for (const Case& c : {Case{4, {6, 15, 24, 10}, 12},       // groups of 3, the last of 1
                          Case{3, {10, 26, 19}, 12},          // groups of 4, the last of 2
                          Case{5, {3, 7, 11, 15, 19}, 10},    // dividing: pairs
                          Case{1, {55}, 10},
                          Case{10, {1, 2, 3, 4, 5, 6, 7, 8, 9, 10}, 10},
                          Case{20, {1, 2, 3, 4, 5, 6, 7, 8, 9, 10}, 10}}) {
        CAPTURE(c.bins);
        const viewer::Histogram r = h.rebinned(c.bins);
        CHECK(r.counts == c.counts);
        CHECK(r.lo == 0);
        CHECK(r.hi == c.hi);
        CHECK(r.total() == h.total());
        CHECK(r.below == 2);
        CHECK(r.above == 1);
        CHECK(r.non_finite == 1);
        const double group = static_cast<double>((h.counts.size() + c.bins - 1) / c.bins);
        CHECK(r.width() == group * h.width());
    }

    SUBCASE("a fine histogram: 4096 bins to 100 (groups of 41, the last of 37)") {
        viewer::Histogram f = viewer::Histogram::over(-1, 1, 4096);
        Rng rng{21};
        std::vector<float> x;
        for (int i = 0; i < 100000; ++i) x.push_back(rng.uniform(-1, 1) * rng.uniform(0, 1));
        f.add(x);
        const viewer::Histogram r = f.rebinned(100);
        REQUIRE(r.counts.size() == 100);
        for (size_t j = 0; j < 100; ++j) {
            uint64_t want = 0;
            for (size_t i = j * 41; i < std::min<size_t>((j + 1) * 41, 4096); ++i) want += f.counts[i];
            CHECK_MESSAGE(r.counts[j] == want, fmt::format("bin {}", j));
        }
        CHECK(r.total() == f.total());
        CHECK(r.lo == -1);
        CHECK_CLOSE(r.hi, -1 + 4100.0 * 2.0 / 4096.0, 1e-12);
        CHECK_CLOSE(r.width(), 41 * f.width(), 1e-12);
        for (size_t j = 0; j < 100; ++j) CHECK_CLOSE_ABS(r.bin_lo(j), f.bin_lo(j * 41), 1e-12, 1e-12);
    }
}

TEST_CASE("trimmed histograms drop the empty bins at either end and keep the bins where they were") {
    viewer::Histogram h = viewer::Histogram::over(0, 16, 16);
    const float v[] = {3.5f, 5.5f, 10.5f, 10.25f, -1.0f, 17.0f, kNaN};
    h.add(v);
    const viewer::Histogram t = h.trimmed();
    CHECK(t.counts == std::vector<uint64_t>{1, 0, 1, 0, 0, 0, 0, 2});
    CHECK(t.lo == 3);
    CHECK(t.hi == 11);
    CHECK(t.bin_lo(0) == h.bin_lo(3));
    CHECK(t.width() == h.width());
    CHECK(t.total() == h.total());
    CHECK(t.below == 1);
    CHECK(t.above == 1);
    CHECK(t.non_finite == 1);

    SUBCASE("a range whose edges are not exact") {
        viewer::Histogram g = viewer::Histogram::over(-0.3, 0.7, 10);
        const float x[] = {-0.05f, 0.12f, 0.31f, 0.33f};  // bins 2, 4, 6, 6
        g.add(x);
        REQUIRE(g.counts == std::vector<uint64_t>{0, 0, 1, 0, 1, 0, 2, 0, 0, 0});
        const viewer::Histogram k = g.trimmed();
        CHECK(k.counts == std::vector<uint64_t>{1, 0, 1, 0, 2});
        CHECK(k.bin_lo(0) == g.bin_lo(2));
        CHECK_CLOSE(k.width(), g.width(), 1e-12);
        CHECK_CLOSE(k.hi, g.bin_lo(7), 1e-12);
        for (size_t j = 0; j < k.counts.size(); ++j) CHECK_CLOSE_ABS(k.bin_lo(j), g.bin_lo(2 + j), 1e-12, 1e-15);
    }
    SUBCASE("nothing to trim") {
        viewer::Histogram g = viewer::Histogram::over(0, 4, 4);
        const float x[] = {0.5f, 3.5f};
        g.add(x);
        const viewer::Histogram k = g.trimmed();
        CHECK(k.counts == g.counts);
        CHECK(k.lo == 0);
        CHECK(k.hi == 4);
    }
    SUBCASE("an empty histogram keeps one bin") {
        viewer::Histogram g = viewer::Histogram::over(0, 4, 4);
        const float x[] = {-1.0f, kNaN};
        g.add(x);
        const viewer::Histogram k = g.trimmed();
        CHECK(k.counts.size() == 1);
        CHECK(k.total() == 0);
        CHECK(k.below == 1);
        CHECK(k.non_finite == 1);
    }
}

// ================================================================ 3. SymmetricHistogram

TEST_CASE("a symmetric histogram needs a bin count that is a multiple of 4") {
    CHECK_THROWS_AS(viewer::SymmetricHistogram(6), std::invalid_argument);
    CHECK_THROWS_AS(viewer::SymmetricHistogram(10), std::invalid_argument);
    CHECK_THROWS_AS(viewer::SymmetricHistogram(2), std::invalid_argument);
    CHECK_THROWS_AS(viewer::SymmetricHistogram(4097), std::invalid_argument);
    CHECK_NOTHROW(viewer::SymmetricHistogram(4));
    CHECK_NOTHROW(viewer::SymmetricHistogram(12));
    const viewer::SymmetricHistogram d;
    CHECK(d.counts().size() == 4096);
    CHECK(d.range() == viewer::SymmetricHistogram::kMinRange);
    CHECK(d.non_finite() == 0);
}

TEST_CASE("a symmetric histogram's range is the smallest power of two above every magnitude (kMinRange at least)") {
    viewer::SymmetricHistogram s(8);
    const float tiny[] = {1e-13f, -3e-13f, 0.0f, -0.0f};
    s.add(tiny);
    CHECK(s.range() == viewer::SymmetricHistogram::kMinRange);
    const float x[] = {0.3f, -0.25f};
    s.add(x);
    CHECK(s.range() == 0.5);
    const float y[] = {0.5f};  // a magnitude of exactly R is not inside [-R, R): R doubles
    s.add(y);
    CHECK(s.range() == 1);
    const std::vector<float> all = {1e-13f, -3e-13f, 0.0f, -0.0f, 0.3f, -0.25f, 0.5f};
    const HandCounts c = count_by_hand(all, -1, 1, 8);  // width 0.25
    CHECK(s.counts() == c.counts);
    CHECK(s.counts()[3] == 2);  // -0.25 and -3e-13
    CHECK(s.counts()[4] == 3);  // 0, -0 and 1e-13: at or above the middle edge
    CHECK(s.counts()[5] == 1);  // 0.3
    CHECK(s.counts()[6] == 1);  // 0.5 on the lower edge of [0.5, 0.75)
    const float inf[] = {kInf, kNaN, -kInf};
    s.add(inf);
    CHECK(s.range() == 1);
    CHECK(s.non_finite() == 3);
    viewer::SymmetricHistogram neg(8);
    const float m[] = {-4.0f};
    neg.add(m);
    CHECK(neg.range() == 8);
    CHECK(neg.counts()[2] == 1);  // [-4, -2) of [-8, 8)
}

TEST_CASE("a symmetric histogram's counts stay exact through several doublings") {
    // Each stage forces the range up; the result must equal counts made by hand over the
    // final [-R, R) with the same bins, and a Histogram built directly over it.
    for (size_t bins : {size_t{16}, size_t{4096}}) {
        CAPTURE(bins);
        viewer::SymmetricHistogram s(bins);
        std::vector<float> all;
        auto add = [&](std::vector<float> v) {
            s.add(v);
            all.insert(all.end(), v.begin(), v.end());
        };
        Rng rng{bins};
        add({1e-13f, -3e-13f, 0.0f});
        CHECK(s.range() == viewer::SymmetricHistogram::kMinRange);
        add({0.3f, -0.2f, 0.01f, -0.3f});
        CHECK(s.range() == 0.5);
        add({0.25f, -0.125f});  // exact bin edges, then widened past
        std::vector<float> stage;
        for (int i = 0; i < 5000; ++i) stage.push_back(rng.uniform(-2.9, 2.9));
        stage.push_back(-2.0f);
        stage.push_back(1.0f);
        add(stage);
        CHECK(s.range() == 4);
        add({4.0f});  // exactly R: doubles it
        CHECK(s.range() == 8);
        add({-100.5f, kNaN});
        CHECK(s.range() == 128);
        stage.clear();
        for (int i = 0; i < 20000; ++i) {
            // Magnitudes from 1e-6 to 100, either sign.
            const double m = std::pow(10.0, rng.uniform(-6.0, 2.0));
            stage.push_back(static_cast<float>(rng.next() & 1 ? m : -m));
        }
        add(stage);
        const double R = s.range();
        CHECK(R == 128);
        const HandCounts c = count_by_hand(all, -R, R, bins);
        CHECK(s.counts() == c.counts);
        CHECK(s.non_finite() == 1);
        viewer::Histogram direct = viewer::Histogram::over(-R, R, bins);
        direct.add(all);
        CHECK(s.counts() == direct.counts);
        const viewer::Histogram h = s.histogram();
        CHECK(h.lo == -R);
        CHECK(h.hi == R);
        CHECK(h.counts == s.counts());
        CHECK(h.non_finite == 1);
        CHECK(h.below == 0);
        CHECK(h.above == 0);
    }
}

TEST_CASE("a symmetric histogram of values spread over many magnitudes: R a power of two with R / 2 <= max|x| < R") {
    Rng rng{99};
    for (double top : {1e-9, 3e-5, 0.7, 1.0001, 4e4, 3e30}) {
        CAPTURE(top);
        viewer::SymmetricHistogram s(64);
        std::vector<float> all;
        double max_abs = 0;
        for (int chunk = 0; chunk < 10; ++chunk) {
            std::vector<float> v;
            for (int i = 0; i < 1000; ++i) {
                const float x = static_cast<float>((rng.uniform() * 2 - 1) * top * std::pow(10.0, -4 * rng.uniform()));
                v.push_back(x);
                max_abs = std::max(max_abs, static_cast<double>(std::fabs(x)));
            }
            s.add(v);
            all.insert(all.end(), v.begin(), v.end());
        }
        const double R = s.range();
        CHECK(is_power_of_two(R));
        CHECK(R > max_abs);
        if (max_abs >= viewer::SymmetricHistogram::kMinRange) CHECK(R / 2 <= max_abs);
        else CHECK(R == viewer::SymmetricHistogram::kMinRange);
        const HandCounts c = count_by_hand(all, -R, R, 64);
        CHECK(s.counts() == c.counts);
    }
}

TEST_CASE("a symmetric histogram puts a tiny negative value below zero, however wide its range") {
    viewer::SymmetricHistogram s(8);
    const float big[] = {100.0f};
    s.add(big);
    REQUIRE(s.range() == 128);  // bins of 32
    const float tiny[] = {-1e-20f, 1e-20f, -0.0f, -3e-30f};
    s.add(tiny);
    CHECK(s.counts() == std::vector<uint64_t>{0, 0, 0, 2, 2, 0, 0, 1});  // [-32, 0): -1e-20, -3e-30
    CHECK(s.counts() == count_by_hand({100.0f, -1e-20f, 1e-20f, -0.0f, -3e-30f}, -128, 128, 8).counts);
}

TEST_CASE("symmetric histogram counts do not depend on the order of values, chunks and merges") {
    Rng rng{17};
    std::vector<std::vector<float>> chunks(6);
    const double tops[] = {0.001, 250.0, 0.5, 3.0, 1e-12, 17.0};
    for (size_t k = 0; k < chunks.size(); ++k)
        for (int i = 0; i < 3000; ++i) chunks[k].push_back(static_cast<float>((rng.uniform() * 2 - 1) * tops[k]));
    chunks[2].push_back(0.5f);   // powers of two, where a range would stop
    chunks[3].push_back(-2.0f);
    chunks[5].push_back(16.0f);
    chunks[1].push_back(kNaN);
    std::vector<float> all;
    for (const auto& c : chunks) all.insert(all.end(), c.begin(), c.end());
    viewer::SymmetricHistogram one(32);
    one.add(all);
    REQUIRE(one.range() == 256);
    CHECK(one.counts() == count_by_hand(all, -256, 256, 32).counts);

    auto check_same = [&](const viewer::SymmetricHistogram& h) {
        CHECK(h.range() == one.range());
        CHECK(h.counts() == one.counts());
        CHECK(h.non_finite() == 1);
    };
    // One histogram fed chunk by chunk, forwards and backwards.
    viewer::SymmetricHistogram fwd(32), bwd(32);
    for (size_t k = 0; k < chunks.size(); ++k) fwd.add(chunks[k]);
    for (size_t k = chunks.size(); k-- > 0;) bwd.add(chunks[k]);
    check_same(fwd);
    check_same(bwd);
    // A histogram per chunk, merged forwards, backwards and as a tree.
    std::vector<viewer::SymmetricHistogram> parts;
    for (const auto& c : chunks) {
        parts.emplace_back(32);
        parts.back().add(c);
    }
    viewer::SymmetricHistogram mf(32), mb(32);
    for (size_t k = 0; k < parts.size(); ++k) mf.merge(parts[k]);
    for (size_t k = parts.size(); k-- > 0;) mb.merge(parts[k]);
    check_same(mf);
    check_same(mb);
    viewer::SymmetricHistogram l = parts[0], r = parts[3];
    l.merge(parts[1]);
    l.merge(parts[2]);
    r.merge(parts[4]);
    r.merge(parts[5]);
    r.merge(l);
    check_same(r);
}

TEST_CASE("merging symmetric histograms of different ranges equals adding everything to one") {
    Rng rng{4};
    std::vector<float> a, b;
    for (int i = 0; i < 4000; ++i) a.push_back(rng.uniform(-2.9, 2.9));
    for (int i = 0; i < 4000; ++i) b.push_back(rng.uniform(-99.0, 99.0));
    a.push_back(kNaN);
    b.push_back(kInf);
    b.push_back(kNaN);
    std::vector<float> all = a;
    all.insert(all.end(), b.begin(), b.end());
    viewer::SymmetricHistogram one(64);
    one.add(all);
    REQUIRE(one.range() == 128);

    viewer::SymmetricHistogram ha(64), hb(64);
    ha.add(a);
    hb.add(b);
    REQUIRE(ha.range() == 4);
    REQUIRE(hb.range() == 128);
    viewer::SymmetricHistogram ab = ha, ba = hb;
    ab.merge(hb);  // the narrower widens to the other's range
    ba.merge(ha);  // the narrower's counts fold into the wider
    for (const viewer::SymmetricHistogram* m : {&ab, &ba}) {
        CHECK(m->range() == 128);
        CHECK(m->counts() == one.counts());
        CHECK(m->non_finite() == 3);
    }
    viewer::SymmetricHistogram empty(64), e2 = one;
    e2.merge(empty);
    CHECK(e2.counts() == one.counts());
    CHECK(e2.range() == 128);
    empty.merge(one);
    CHECK(empty.counts() == one.counts());
    CHECK(empty.range() == 128);
}

// ================================================================ 4. HeatMapBuilder

TEST_CASE("a heat map puts matrix row r in cell row floor(r out_rows / rows), and the same for columns") {
    const uint64_t rows = 7, cols = 10;
    std::vector<float> m(rows * cols);
    for (uint64_t r = 0; r < rows; ++r)
        for (uint64_t c = 0; c < cols; ++c) m[r * cols + c] = static_cast<float>(r * 10 + c) - 30.0f;
    viewer::HeatMapBuilder b(rows, cols, 3, 4);
    CHECK(b.cell_rows() == 3);
    CHECK(b.cell_cols() == 4);
    b.add_rows(0, m);
    const viewer::HeatMap h = b.finish();
    REQUIRE(h.rows == 3);
    REQUIRE(h.cols == 4);
    // Rows {0,1,2} {3,4} {5,6}; columns {0,1,2} {3,4} {5,6,7} {8,9}. Value r * 10 + c - 30.
    CHECK(h.mean[0 * 4 + 0] == 11.0f - 30.0f);
    CHECK(h.mean[1 * 4 + 1] == 38.5f - 30.0f);
    CHECK(h.mean[2 * 4 + 2] == 61.0f - 30.0f);
    CHECK(h.mean[2 * 4 + 3] == 63.5f - 30.0f);
    CHECK(h.mean[0 * 4 + 3] == 18.5f - 30.0f);
    CHECK(h.max_abs[0] == 30.0f);          // |-30| at (0, 0)
    CHECK(h.max_abs[2 * 4 + 3] == 39.0f);  // 69 - 30 at (6, 9)
    CHECK(h.max_abs[1 * 4 + 0] == 12.0f);  // rows 3-4, columns 0-2: 0 .. 12
    CHECK(h.rms[1 * 4 + 0] == static_cast<float>(std::sqrt((0 + 1 + 4 + 100 + 121 + 144) / 6.0)));
    check_heat(h, heat_oracle(m, rows, cols, 3, 4));
}

TEST_CASE("heat map mean, rms and largest magnitude per cell match a direct computation for several shapes") {
    struct Case {
        uint64_t rows, cols;
        uint32_t max_rows, max_cols, want_rows, want_cols;
    };
    Rng rng{13};
    for (const Case& c : {Case{7, 10, 3, 4, 3, 4}, Case{2, 1000, 4, 256, 2, 256}, Case{1000, 3, 64, 64, 64, 3},
                          Case{300, 300, 256, 256, 256, 256}, Case{64, 96, 5, 7, 5, 7}}) {
        CAPTURE(c.rows);
        CAPTURE(c.cols);
        std::vector<float> m(c.rows * c.cols);
        for (float& x : m) x = rng.uniform(-1.0, 1.5);
        viewer::HeatMapBuilder b(c.rows, c.cols, c.max_rows, c.max_cols);
        CHECK(b.cell_rows() == c.want_rows);
        CHECK(b.cell_cols() == c.want_cols);
        b.add_rows(0, m);
        check_heat(b.finish(), heat_oracle(m, c.rows, c.cols, c.want_rows, c.want_cols));
    }
}

TEST_CASE("heat map rows added in several chunks, in any order, give the same cells") {
    const uint64_t rows = 7, cols = 10;
    Rng rng{2};
    std::vector<float> m(rows * cols);
    for (float& x : m) x = static_cast<float>(static_cast<int>(rng.next() % 64) - 32) / 8.0f;  // exact sums
    auto cells = [&](const std::vector<std::pair<uint64_t, uint64_t>>& chunks) {
        viewer::HeatMapBuilder b(rows, cols, 3, 4);
        for (auto [first, n] : chunks) b.add_rows(first, std::span<const float>(m).subspan(first * cols, n * cols));
        return b.finish();
    };
    const viewer::HeatMap whole = cells({{0, 7}});
    check_heat(whole, heat_oracle(m, rows, cols, 3, 4));
    for (const auto& order : {std::vector<std::pair<uint64_t, uint64_t>>{{4, 3}, {0, 2}, {2, 2}},
                              std::vector<std::pair<uint64_t, uint64_t>>{{3, 3}, {0, 3}, {6, 1}},
                              std::vector<std::pair<uint64_t, uint64_t>>{{6, 1}, {5, 1}, {4, 1}, {3, 1}, {2, 1}, {1, 1}, {0, 1}}}) {
        const viewer::HeatMap h = cells(order);
        CHECK(h.rows == whole.rows);
        CHECK(h.cols == whole.cols);
        CHECK(h.mean == whole.mean);
        CHECK(h.rms == whole.rms);
        CHECK(h.max_abs == whole.max_abs);
    }
}

TEST_CASE("heat map parts filled apart and merged in range order give the whole matrix's cells") {
    const uint64_t rows = 50, cols = 12;
    Rng rng{31};
    std::vector<float> exact(rows * cols), any(rows * cols);
    for (float& x : exact) x = static_cast<float>(static_cast<int>(rng.next() % 128) - 64) / 16.0f;  // sums exact in double
    for (float& x : any) x = rng.uniform(-3.0, 2.0);
    any[7 * cols + 3] = kNaN;
    any[20 * cols + 11] = -kInf;
    using Ranges = std::vector<std::pair<uint64_t, uint64_t>>;
    auto by_parts = [&](const std::vector<float>& m, const Ranges& ranges) {
        viewer::HeatMapBuilder whole(rows, cols, 7, 5);
        for (auto [first, end] : ranges) {
            viewer::HeatMapBuilder p = whole.part(first, end);
            p.add_rows(first, std::span<const float>(m).subspan(first * cols, (end - first) * cols));
            whole.merge(p);
        }
        return whole.finish();
    };
    Ranges single = {{0, 50}}, three = {{0, 10}, {10, 23}, {23, 50}}, rows_one_by_one;
    for (uint64_t r = 0; r < rows; ++r) rows_one_by_one.push_back({r, r + 1});
    viewer::HeatMapBuilder plain(rows, cols, 7, 5);
    plain.add_rows(0, exact);
    const viewer::HeatMap want = plain.finish();
    check_heat(want, heat_oracle(exact, rows, cols, 7, 5));
    for (const Ranges& ranges : {single, three, rows_one_by_one}) {
        CAPTURE(ranges.size());
        const viewer::HeatMap h = by_parts(exact, ranges);
        CHECK(h.rows == want.rows);
        CHECK(h.cols == want.cols);
        CHECK(h.mean == want.mean);
        CHECK(h.rms == want.rms);
        CHECK(h.max_abs == want.max_abs);
        check_heat(by_parts(any, ranges), heat_oracle(any, rows, cols, 7, 5));
    }
}

TEST_CASE("a matrix smaller than the cell limit gets one cell per value; a cell of only NaN and Inf is NaN") {
    const std::vector<float> m = {1.5f, -2.0f, 0.0f, 3.25f, kNaN,  //
                                  -0.5f, 7.0f, -kInf, 1e-3f, 2.0f,  //
                                  4.0f, -4.0f, 0.125f, kInf, -9.0f};
    viewer::HeatMapBuilder b(3, 5, 256, 256);
    CHECK(b.cell_rows() == 3);
    CHECK(b.cell_cols() == 5);
    b.add_rows(0, m);
    const viewer::HeatMap h = b.finish();
    REQUIRE(h.rows == 3);
    REQUIRE(h.cols == 5);
    for (size_t k = 0; k < m.size(); ++k) {
        CAPTURE(k);
        if (std::isfinite(m[k])) {
            CHECK(h.mean[k] == m[k]);
            CHECK(h.rms[k] == std::fabs(m[k]));
            CHECK(h.max_abs[k] == std::fabs(m[k]));
        } else {
            CHECK(std::isnan(h.mean[k]));
            CHECK(std::isnan(h.rms[k]));
            CHECK(std::isnan(h.max_abs[k]));
        }
    }

    SUBCASE("a cell mixing finite and non-finite values keeps the finite ones") {
        const std::vector<float> g = {kNaN, kInf, kNaN, 3.0f,  //
                                      -kInf, kNaN, -4.0f, kInf,  //
                                      1, 2, 3, 4,                //
                                      5, 6, 7, 8};
        viewer::HeatMapBuilder q(4, 4, 2, 2);
        q.add_rows(0, g);
        const viewer::HeatMap r = q.finish();
        REQUIRE(r.rows == 2);
        REQUIRE(r.cols == 2);
        CHECK(std::isnan(r.mean[0]));
        CHECK(std::isnan(r.rms[0]));
        CHECK(std::isnan(r.max_abs[0]));
        CHECK(r.mean[1] == -0.5f);
        CHECK(r.rms[1] == static_cast<float>(std::sqrt(12.5)));
        CHECK(r.max_abs[1] == 4.0f);
        CHECK(r.mean[2] == 3.5f);
        CHECK(r.max_abs[3] == 8.0f);
        check_heat(r, heat_oracle(g, 4, 4, 2, 2));
    }
}

// ================================================================ 5. ticks

TEST_CASE("axis ticks: the smallest 1, 2 or 5 x 10^k step with at most max_ticks multiples inside the range") {
    struct Case {
        double lo, hi;
        int max_ticks;
    };
    auto count = [](double lo, double hi, double step) {
        return std::floor(hi / step + 1e-9) - std::ceil(lo / step - 1e-9) + 1;
    };
    auto previous_step = [](double step) {
        const double p = std::pow(10.0, std::floor(std::log10(step) + 1e-9));
        const double m = std::round(step / p);
        return m == 1 ? 0.5 * p : m == 2 ? p : 2 * p;
    };
    for (const Case& c : {Case{0, 1, 5}, Case{0, 1, 10}, Case{0, 1, 11}, Case{-3.7, 12.2, 6}, Case{0.0013, 0.0042, 4},
                          Case{-1e6, 3e6, 8}, Case{123.41, 123.52, 3}, Case{-0.05, 0.05, 2}, Case{7, 9, 1}, Case{7, 10, 1}, Case{0.31, 0.39, 1},
                          Case{-250, -20, 5}, Case{1.3e-7, 3.1e-7, 10}, Case{0, 4096, 9}}) {
        CAPTURE(c.lo);
        CAPTURE(c.hi);
        CAPTURE(c.max_ticks);
        const viewer::Ticks t = viewer::nice_ticks(c.lo, c.hi, c.max_ticks);
        REQUIRE(t.step > 0);
        const double p = std::pow(10.0, std::floor(std::log10(t.step) + 1e-9));
        const double m = t.step / p;
        CHECK_MESSAGE((close(m, 1, 1e-9) || close(m, 2, 1e-9) || close(m, 5, 1e-9)), fmt::format("step {}", t.step));
        REQUIRE(!t.values.empty());
        CHECK(t.values.size() <= static_cast<size_t>(c.max_ticks));
        CHECK(static_cast<double>(t.values.size()) == count(c.lo, c.hi, t.step));  // every multiple inside
        for (size_t i = 0; i < t.values.size(); ++i) {
            const double v = t.values[i];
            CAPTURE(v);
            CHECK(v >= c.lo - 1e-9 * t.step);
            CHECK(v <= c.hi + 1e-9 * t.step);
            CHECK(std::fabs(v / t.step - std::round(v / t.step)) < 1e-6);
            if (i) CHECK_CLOSE(v - t.values[i - 1], t.step, 1e-6);
        }
        // The next smaller nice step would give too many ticks.
        CHECK(count(c.lo, c.hi, previous_step(t.step)) > c.max_ticks);
    }
}

TEST_CASE("axis ticks: empty for a range that is not finite, at least one for a single value") {
    CHECK(viewer::nice_ticks(0, std::numeric_limits<double>::infinity(), 5).values.empty());
    CHECK(viewer::nice_ticks(-std::numeric_limits<double>::infinity(), 0, 5).values.empty());
    CHECK(viewer::nice_ticks(std::nan(""), 1, 5).values.empty());
    CHECK(viewer::nice_ticks(0, std::nan(""), 5).values.empty());
    for (double x : {5.0, 0.0, -2.0}) {
        CAPTURE(x);
        const viewer::Ticks t = viewer::nice_ticks(x, x, 4);
        REQUIRE(!t.values.empty());
        CHECK(t.values.size() <= 4);
        for (double v : t.values) CHECK(close(v, x, 1e-9, 1e-12));
    }
}

TEST_CASE("tick labels have as many decimals as the step needs") {
    CHECK(viewer::tick_label(0.25, 0.25) == "0.25");
    CHECK(viewer::tick_label(0.25, 0.05) == "0.25");
    CHECK(viewer::tick_label(-3, 1) == "-3");
    CHECK(viewer::tick_label(20, 10) == "20");
    CHECK(viewer::tick_label(1.5, 0.5) == "1.5");
    CHECK(viewer::tick_label(0.1 * 3, 0.1) == "0.3");
    CHECK(viewer::tick_label(1e-5, 1e-5) == "1e-05");
}

TEST_CASE("tick labels tell neighbouring ticks apart: read back, each is within half a step of its tick") {
    struct Case {
        double lo, hi;
        int max_ticks;
    };
    for (const Case& c : {Case{-3, 3, 7}, Case{0.0013, 0.0042, 4}, Case{1.0001, 1.0003, 5}, Case{1e6, 1e6 + 10, 6},
                          Case{2.5e7, 2.5e7 + 400, 5}, Case{1.3e-7, 3.1e-7, 10}, Case{-0.05, 0.05, 5}, Case{99.5, 100.5, 6}}) {
        CAPTURE(c.lo);
        CAPTURE(c.hi);
        const viewer::Ticks t = viewer::nice_ticks(c.lo, c.hi, c.max_ticks);
        REQUIRE(t.values.size() >= 2);
        std::set<std::string> labels;
        for (double v : t.values) {
            const std::string label = viewer::tick_label(v, t.step);
            CAPTURE(v);
            CAPTURE(label);
            labels.insert(label);
            CHECK(std::fabs(std::stod(label) - v) <= 0.5 * t.step);
        }
        CHECK(labels.size() == t.values.size());
    }
}

// ================================================================ 6. analyze_values

TEST_CASE("analyze_values matches the statistics, histogram and heat map of the whole dequantized tensor, for every type of the mixed model") {
    const DemoFile f(gguf::fixtures::mixed_demo_options());
    viewer::ValueOptions o;
    o.bins = 512;
    o.heat_rows = 16;
    o.heat_cols = 24;
    std::set<TypeId> seen;
    for (const gguf::Model::Tensor& t : f.model.tensors()) {
        const std::string name(t.info->name);
        CAPTURE(name);
        seen.insert(t.info->type);
        const std::vector<float> x = dequantized(f.model, t);
        const DirectStats d = direct_stats(x);
        viewer::ValueAnalysis by_thread[2];
        for (int threads : {1, 2}) {
            CAPTURE(threads);
            o.threads = threads;
            viewer::Progress p;
            CHECK(p.fraction() == 0);
            viewer::ValueAnalysis a = viewer::analyze_values(f.model, t, o, &p);
            check_stats(a.stats, d, 1e-12);
            // Histogram over [min, max], every finite value in a bin.
            CHECK(a.histogram.lo == d.min);
            CHECK(a.histogram.hi == d.max);
            REQUIRE(a.histogram.counts.size() == o.bins);
            CHECK(a.histogram.total() == d.finite);
            CHECK(a.histogram.below == 0);
            CHECK(a.histogram.above == 0);
            CHECK(a.histogram.non_finite == d.nans + d.infs);
            viewer::Histogram direct = viewer::Histogram::over(d.min, d.max, o.bins);
            direct.add(x);
            CHECK(a.histogram.counts == direct.counts);
            // A heat map for matrices: ne[1] rows of ne[0] values.
            if (t.info->n_dims >= 2) {
                REQUIRE(a.heat.has_value());
                const uint64_t rows = t.info->n_elements / t.info->shape[0];
                const auto cr = static_cast<uint32_t>(std::min<uint64_t>(rows, o.heat_rows));
                const auto cc = static_cast<uint32_t>(std::min<uint64_t>(t.info->shape[0], o.heat_cols));
                check_heat(*a.heat, heat_oracle(x, rows, t.info->shape[0], cr, cc));
            } else {
                CHECK(!a.heat.has_value());
            }
            // Both passes counted.
            CHECK(p.total.load() == 2 * static_cast<int64_t>(t.info->n_elements));
            CHECK(p.done.load() == p.total.load());
            CHECK(p.fraction() == 1.0);
            by_thread[threads - 1] = std::move(a);
        }
        CHECK(by_thread[0].histogram.counts == by_thread[1].histogram.counts);
        CHECK(by_thread[0].stats.count == by_thread[1].stats.count);
        CHECK(by_thread[0].stats.min == by_thread[1].stats.min);
        CHECK(by_thread[0].stats.max == by_thread[1].stats.max);
        CHECK_CLOSE_ABS(by_thread[0].stats.mean(), by_thread[1].stats.mean(), 1e-12, 1e-12 * by_thread[1].stats.stddev());
        CHECK_CLOSE(by_thread[0].stats.stddev(), by_thread[1].stats.stddev(), 1e-12);
    }
    // The mixed model really has several quantized types.
    for (TypeId t : {TypeId::F32, TypeId::F16, TypeId::BF16, TypeId::Q4_K, TypeId::Q5_K, TypeId::Q6_K, TypeId::Q8_0,
                     TypeId::MXFP4, TypeId::NVFP4})
        CHECK_MESSAGE(seen.count(t) == 1, gguf::type_info(t).name);
}

TEST_CASE("analyze_values of the default demo model's f16 matrices with the default options") {
    const DemoFile f(DemoOptions{});
    const gguf::Model::Tensor& t = f.tensor("token_embd.weight");  // 64 x 320
    const std::vector<float> x = dequantized(f.model, t);
    viewer::Progress p;
    const viewer::ValueAnalysis a = viewer::analyze_values(f.model, t, viewer::ValueOptions{}, &p);
    check_stats(a.stats, direct_stats(x), 1e-12);
    CHECK(a.histogram.counts.size() == 4096);
    CHECK(a.histogram.total() == x.size());
    REQUIRE(a.heat.has_value());
    check_heat(*a.heat, heat_oracle(x, 320, 64, 256, 64));
    CHECK(p.done.load() == p.total.load());
}

TEST_CASE("analyze_values counts NaN and Inf apart and puts a constant tensor in the histogram's middle bin") {
    const CustomFile f([](gguf::Writer& w) {
        add_f32(w, "odd.weight", {4, 3}, {1.0f, kNaN, -2.0f, 0.0f, kInf, 3.0f, -kInf, 0.5f, kNaN, kNaN, 8.0f, -0.0f});
        add_f32(w, "constant.weight", {8, 2}, std::vector<float>(16, 0.75f));
    });
    viewer::ValueOptions o;
    o.bins = 5;
    {
        const gguf::Model::Tensor& t = f.tensor("odd.weight");
        const std::vector<float> x = dequantized(f.model, t);
        const viewer::ValueAnalysis a = viewer::analyze_values(f.model, t, o);
        check_stats(a.stats, direct_stats(x), 1e-12);
        CHECK(a.stats.nans == 3);
        CHECK(a.stats.infs == 2);
        CHECK(a.stats.zeros == 2);
        CHECK(a.stats.min == -2);
        CHECK(a.stats.max == 8);
        CHECK(a.histogram.total() == 7);
        CHECK(a.histogram.non_finite == 5);
        REQUIRE(a.heat.has_value());
        check_heat(*a.heat, heat_oracle(x, 3, 4, 3, 4));
    }
    {
        const gguf::Model::Tensor& t = f.tensor("constant.weight");
        const viewer::ValueAnalysis a = viewer::analyze_values(f.model, t, o);
        CHECK(a.stats.min == 0.75);
        CHECK(a.stats.max == 0.75);
        CHECK(a.stats.stddev() == 0);
        CHECK(a.histogram.lo == 0.75 - 1.0 / 1024);
        CHECK(a.histogram.hi == 0.75 + 1.0 / 1024);
        REQUIRE(a.histogram.counts.size() == 5);
        CHECK(a.histogram.counts[2] == 16);
    }
}

TEST_CASE("analyze_values of a 3-D tensor stacks every ne[0] x ne[1] matrix as rows of the heat map") {
    std::vector<float> v(8 * 5 * 3);
    for (size_t i = 0; i < v.size(); ++i) v[i] = static_cast<float>((i * 7) % 19) * 0.25f - 2.0f;
    const CustomFile f([&](gguf::Writer& w) { add_f32(w, "blk.0.ffn_up_exps.weight", {8, 5, 3}, v); });
    const gguf::Model::Tensor& t = f.tensor("blk.0.ffn_up_exps.weight");
    for (uint32_t max_rows : {256u, 4u}) {
        CAPTURE(max_rows);
        viewer::ValueOptions o;
        o.heat_rows = max_rows;
        o.heat_cols = 256;
        o.bins = 16;
        const viewer::ValueAnalysis a = viewer::analyze_values(f.model, t, o);
        check_stats(a.stats, direct_stats(v), 1e-12);
        REQUIRE(a.heat.has_value());
        check_heat(*a.heat, heat_oracle(v, 15, 8, std::min(15u, max_rows), 8));
    }
}

TEST_CASE("analyze_error of an expert tensor uses ne[0] importance weights per matrix") {
    Rng rng{77};
    std::vector<float> v(32 * 4 * 3);
    for (float& x : v) x = rng.uniform(-1.0, 1.0);
    const CustomFile f([&](gguf::Writer& w) { add_f32(w, "blk.0.ffn_up_exps.weight", {32, 4, 3}, v); });
    const gguf::Model::Tensor& t = f.tensor("blk.0.ffn_up_exps.weight");
    std::vector<float> w(96);
    for (size_t i = 0; i < w.size(); ++i) w[i] = i / 32 == 1 ? 0.01f + static_cast<float>(i % 32) : 1.0f + static_cast<float>((i * 5) % 7);
    for (TypeId target : {TypeId::Q4_0, TypeId::Q8_0, TypeId::Q5_0}) {
        CAPTURE(gguf::type_info(target).name);
        // The oracle: each matrix of 4 rows quantized with its own 32 weights.
        std::vector<float> y(v.size());
        for (size_t e = 0; e < 3; ++e) {
            const std::span<const float> x = std::span<const float>(v).subspan(e * 128, 128);
            std::vector<uint8_t> q(quant::row_bytes(target, 32) * 4);
            quant::quantize(target, x, 32, std::span<const float>(w).subspan(e * 32, 32), q);
            quant::dequantize(target, q, std::span<float>(y).subspan(e * 128, 128));
        }
        const viewer::ErrorAnalysis a = viewer::analyze_error(f.model, t, target, w, 2);
        check_error(a, error_oracle(v, y));
        // Shared weights (ne[0] values) for every matrix.
        std::vector<float> y1(v.size());
        {
            std::vector<uint8_t> q(quant::row_bytes(target, 32) * 12);
            quant::quantize(target, v, 32, std::span<const float>(w).first(32), q);
            quant::dequantize(target, q, y1);
        }
        const viewer::ErrorAnalysis shared = viewer::analyze_error(f.model, t, target, std::span<const float>(w).first(32), 2);
        check_error(shared, error_oracle(v, y1));
    }
}

TEST_CASE("analyze_values, analyze_error and compare_tensors throw quant::Cancelled for a Progress cancelled beforehand") {
    const DemoFile f(gguf::fixtures::mixed_demo_options());
    const gguf::Model::Tensor& t = f.tensor("blk.0.attn_q.weight");
    {
        viewer::Progress p;
        p.cancel = true;
        CHECK_THROWS_AS(viewer::analyze_values(f.model, t, viewer::ValueOptions{}, &p), quant::Cancelled);
    }
    {
        viewer::Progress p;
        p.cancel = true;
        CHECK_THROWS_AS(viewer::analyze_error(f.model, t, TypeId::Q8_0, {}, 2, &p), quant::Cancelled);
    }
    {
        viewer::Progress p;
        p.cancel = true;
        CHECK_THROWS_AS(viewer::compare_tensors(f.model, t, f.model, t, 2, &p), quant::Cancelled);
    }
}

TEST_CASE("analyze_error equals a round trip done here with quant::quantize and quant::dequantize") {
    const DemoFile mixed(gguf::fixtures::mixed_demo_options());
    const DemoFile f32(f32_options(gguf::fixtures::mixed_demo_options()), "f32.gguf");
    struct Case {
        const DemoFile* file;
        const char* tensor;
        TypeId source;
    };
    for (const Case& c : {Case{&mixed, "blk.0.attn_q.weight", TypeId::F16}, Case{&f32, "blk.1.ffn_down.weight", TypeId::F32},
                          Case{&mixed, "output_norm.weight", TypeId::F32}, Case{&mixed, "token_embd.weight", TypeId::Q4_K},
                          Case{&mixed, "blk.1.attn_output.weight", TypeId::BF16}}) {
        const gguf::Model::Tensor& t = c.file->tensor(c.tensor);
        REQUIRE(t.info->type == c.source);
        for (TypeId target : {TypeId::Q8_0, TypeId::Q4_K}) {
            CAPTURE(c.tensor);
            CAPTURE(gguf::type_info(target).name);
            const ErrorOracle o = round_trip_oracle(c.file->model, t, target, {});
            viewer::ErrorAnalysis by_thread[2];
            for (int threads : {1, 3}) {
                CAPTURE(threads);
                viewer::Progress p;
                viewer::ErrorAnalysis a = viewer::analyze_error(c.file->model, t, target, {}, threads, &p);
                check_error(a, o);
                CHECK(a.bits_per_weight == gguf::bits_per_weight(target));
                CHECK(p.total.load() > 0);
                CHECK(p.done.load() == p.total.load());
                by_thread[threads == 1 ? 0 : 1] = std::move(a);
            }
            CHECK(by_thread[0].histogram.counts == by_thread[1].histogram.counts);
            CHECK(by_thread[0].histogram.lo == by_thread[1].histogram.lo);
            CHECK_CLOSE(by_thread[0].stats.sum_sq_error, by_thread[1].stats.sum_sq_error, 1e-12);
        }
    }
}

TEST_CASE("analyze_error with importance weights equals the weighted round trip") {
    const DemoFile f(gguf::fixtures::mixed_demo_options());
    const gguf::Model::Tensor& t = f.tensor("blk.1.attn_q.weight");  // f16, 256 x 256
    std::vector<float> w(256);
    for (size_t i = 0; i < w.size(); ++i) w[i] = 0.1f + static_cast<float>((i * 37) % 11) * (i % 3 == 0 ? 5.0f : 0.25f);
    for (TypeId target : {TypeId::Q4_K, TypeId::Q8_0}) {
        CAPTURE(gguf::type_info(target).name);
        const ErrorOracle o = round_trip_oracle(f.model, t, target, w);
        const viewer::ErrorAnalysis a = viewer::analyze_error(f.model, t, target, w, 2);
        check_error(a, o);
    }
    // The weights matter for q4_K: without them the round trip differs.
    const ErrorOracle plain = round_trip_oracle(f.model, t, TypeId::Q4_K, {});
    const ErrorOracle weighted = round_trip_oracle(f.model, t, TypeId::Q4_K, w);
    CHECK(plain.sum_sq_error != weighted.sum_sq_error);

    SUBCASE("a type that needs importance refuses to go without it, naming the tensor") {
        REQUIRE(quant::needs_importance(TypeId::IQ2_XXS));
        try {
            viewer::analyze_error(f.model, t, TypeId::IQ2_XXS, {}, 2);
            FAIL("iq2_xxs without importance accepted");
        } catch (const std::invalid_argument& e) {
            CHECK_MESSAGE(std::string(e.what()).find("blk.1.attn_q.weight") != std::string::npos, e.what());
        }
    }
}

TEST_CASE("analyze_error of an f32 tensor to f32 is exact: rmse 0") {
    const DemoFile f(f32_options(DemoOptions{}));
    for (const char* name : {"blk.0.attn_q.weight", "output_norm.weight"}) {
        CAPTURE(name);
        const gguf::Model::Tensor& t = f.tensor(name);
        REQUIRE(t.info->type == TypeId::F32);
        const viewer::ErrorAnalysis a = viewer::analyze_error(f.model, t, TypeId::F32, {}, 2);
        CHECK(a.stats.values == t.info->n_elements);
        CHECK(a.stats.rmse() == 0);
        CHECK(a.stats.sum_sq_error == 0);
        CHECK(a.stats.max_abs_error == 0);
        CHECK(a.stats.snr_db() == std::numeric_limits<double>::infinity());
        CHECK(a.histogram.total() == t.info->n_elements);
        CHECK(a.histogram.lo >= -viewer::SymmetricHistogram::kMinRange);  // every error 0
        CHECK(a.histogram.hi <= viewer::SymmetricHistogram::kMinRange);
        CHECK(a.bits_per_weight == 32);
    }
}

TEST_CASE("analyze_error refuses a row that is not a whole number of the target's blocks, or NaN, naming the tensor") {
    const DemoFile f(DemoOptions{});  // rows of 64 values: not a whole q4_K block of 256
    const gguf::Model::Tensor& t = f.tensor("blk.0.attn_q.weight");
    try {
        viewer::analyze_error(f.model, t, TypeId::Q4_K, {}, 2);
        FAIL("a row of 64 values quantized to q4_K");
    } catch (const std::invalid_argument& e) {
        CHECK_MESSAGE(std::string(e.what()).find("blk.0.attn_q.weight") != std::string::npos, e.what());
    }
    // A target no quantizer makes (q8_1, i32...): refused the same way.
    const DemoFile mixed(gguf::fixtures::mixed_demo_options(), "mixed.gguf");
    for (const gguf::TypeInfo& ti : gguf::all_types()) {
        if (ti.retired || quant::can_quantize(ti.id) || 256 % ti.block_size != 0) continue;
        CAPTURE(ti.name);
        try {
            viewer::analyze_error(mixed.model, mixed.tensor("blk.0.attn_q.weight"), ti.id, {}, 1);
            FAIL("quantized to a type without a quantizer");
        } catch (const std::invalid_argument& e) {
            CHECK_MESSAGE(std::string(e.what()).find("blk.0.attn_q.weight") != std::string::npos, e.what());
        }
    }
    const CustomFile holey([](gguf::Writer& w) {
        std::vector<float> v(64, 0.5f);
        v[40] = kNaN;
        add_f32(w, "holey.weight", {32, 2}, v);
    });
    try {
        viewer::analyze_error(holey.model, holey.tensor("holey.weight"), TypeId::Q8_0, {}, 1);
        FAIL("NaN quantized");
    } catch (const std::invalid_argument& e) {
        CHECK_MESSAGE(std::string(e.what()).find("holey.weight") != std::string::npos, e.what());
    }
}

// ================================================================ 8. compare_tensors

TEST_CASE("compare_tensors of the same tensor in the f16 and f32 demo models equals their direct difference") {
    const DemoFile f16(DemoOptions{}, "f16.gguf");
    const DemoFile f32(f32_options(DemoOptions{}), "f32.gguf");
    for (const char* name : {"blk.0.attn_q.weight", "token_embd.weight", "blk.1.ffn_down.weight"}) {
        CAPTURE(name);
        const gguf::Model::Tensor& a = f16.tensor(name);
        const gguf::Model::Tensor& b = f32.tensor(name);
        REQUIRE(a.info->type == TypeId::F16);
        REQUIRE(b.info->type == TypeId::F32);
        const std::vector<float> xa = dequantized(f16.model, a), xb = dequantized(f32.model, b);
        {
            viewer::Progress p;
            const viewer::ErrorAnalysis r = viewer::compare_tensors(f16.model, a, f32.model, b, 2, &p);
            const ErrorOracle o = error_oracle(xa, xb);
            REQUIRE(o.sum_sq_error > 0);
            check_error(r, o);
            CHECK(r.bits_per_weight == 32);  // the second file's tensor
            CHECK(p.done.load() == p.total.load());
        }
        {
            const viewer::ErrorAnalysis r = viewer::compare_tensors(f32.model, b, f16.model, a, 1);
            check_error(r, error_oracle(xb, xa));
            CHECK(r.bits_per_weight == 16);
        }
        {
            const viewer::ErrorAnalysis r = viewer::compare_tensors(f16.model, a, f16.model, a, 2);
            CHECK(r.stats.values == a.info->n_elements);
            CHECK(r.stats.rmse() == 0);
            CHECK(r.stats.max_abs_error == 0);
            CHECK(r.histogram.total() == a.info->n_elements);
        }
    }
}

TEST_CASE("compare_tensors of an f16 tensor against its q8_0 form in another file") {
    DemoOptions o = gguf::fixtures::mixed_demo_options();
    o.mixed_types = false;  // the same shapes, f16
    const DemoFile f16(o, "f16.gguf");
    const DemoFile mixed(gguf::fixtures::mixed_demo_options(), "mixed.gguf");
    const gguf::Model::Tensor& a = f16.tensor("blk.0.attn_v.weight");
    const gguf::Model::Tensor& b = mixed.tensor("blk.0.attn_v.weight");
    REQUIRE(b.info->type == TypeId::Q8_0);
    const viewer::ErrorAnalysis r = viewer::compare_tensors(f16.model, a, mixed.model, b, 2);
    check_error(r, error_oracle(dequantized(f16.model, a), dequantized(mixed.model, b)));
    CHECK(r.bits_per_weight == 8.5);
}

TEST_CASE("compare_tensors refuses tensors of different shapes") {
    const DemoFile f(DemoOptions{});
    // 64 x 64 against 64 x 32; and 64 x 128 against 128 x 64 (as many values, another shape).
    CHECK_THROWS_AS(viewer::compare_tensors(f.model, f.tensor("blk.0.attn_q.weight"), f.model, f.tensor("blk.0.attn_k.weight")),
                    std::invalid_argument);
    CHECK_THROWS_AS(viewer::compare_tensors(f.model, f.tensor("blk.0.ffn_up.weight"), f.model, f.tensor("blk.0.ffn_down.weight")),
                    std::invalid_argument);
    CHECK_THROWS_AS(viewer::compare_tensors(f.model, f.tensor("blk.0.attn_norm.weight"), f.model, f.tensor("blk.0.attn_q.weight")),
                    std::invalid_argument);
}

// ================================================================ 9. importance

TEST_CASE("importance_for gives the imatrix's weights for a tensor, empty without an entry, and refuses a wrong length") {
    const DemoFile f(gguf::fixtures::mixed_demo_options());
    quant::ImportanceMatrix im;
    quant::ImatrixEntry e;
    for (int i = 0; i < 256; ++i) e.sums.push_back(static_cast<float>(i % 17) + 0.5f);
    e.counts = {4};
    im.set("blk.0.attn_q.weight", e);
    quant::ImatrixEntry short_entry;
    short_entry.sums.assign(128, 1.0f);
    short_entry.counts = {1};
    im.set("blk.0.attn_k.weight", short_entry);

    const std::span<const float> w = viewer::importance_for(im, f.tensor("blk.0.attn_q.weight"));
    REQUIRE(w.size() == 256);
    for (size_t i = 0; i < 256; ++i) CHECK(w[i] == e.sums[i] / 4.0f);
    const std::vector<float>* direct = im.find("blk.0.attn_q.weight");
    REQUIRE(direct != nullptr);
    CHECK(std::equal(w.begin(), w.end(), direct->begin(), direct->end()));

    CHECK(viewer::importance_for(im, f.tensor("blk.1.attn_q.weight")).empty());
    CHECK(viewer::importance_for(im, f.tensor("output_norm.weight")).empty());
    CHECK_THROWS_AS(viewer::importance_for(im, f.tensor("blk.0.attn_k.weight")), std::invalid_argument);
}

TEST_CASE("importance_for an expert tensor takes ne[0] x ne[2] weights") {
    const CustomFile f([](gguf::Writer& w) {
        add_f32(w, "blk.0.ffn_up_exps.weight", {32, 4, 3}, std::vector<float>(32 * 4 * 3, 0.25f));
    });
    const gguf::Model::Tensor& t = f.tensor("blk.0.ffn_up_exps.weight");
    quant::ImportanceMatrix im;
    quant::ImatrixEntry e;
    for (int i = 0; i < 96; ++i) e.sums.push_back(static_cast<float>(i) + 1.0f);
    e.counts = {1, 2, 4};
    im.set("blk.0.ffn_up_exps.weight", e);
    const std::span<const float> w = viewer::importance_for(im, t);
    REQUIRE(w.size() == 96);
    CHECK(w[0] == 1.0f);
    CHECK(w[32] == 33.0f / 2);
    CHECK(w[95] == 96.0f / 4);

    quant::ImportanceMatrix bad;
    quant::ImatrixEntry two;
    two.sums.assign(64, 1.0f);
    two.counts = {1, 1};
    bad.set("blk.0.ffn_up_exps.weight", two);
    CHECK_THROWS_AS(viewer::importance_for(bad, t), std::invalid_argument);
}

TEST_CASE("top_columns lists the largest importances first, ties by the lower index") {
    const std::vector<float> v = {1, 5, 3, 5, 2, 0.5f, 5, 3};
    const std::vector<viewer::ColumnImportance> top = viewer::top_columns(v, 5);
    REQUIRE(top.size() == 5);
    const std::pair<uint64_t, float> want[] = {{1, 5}, {3, 5}, {6, 5}, {2, 3}, {7, 3}};
    for (size_t i = 0; i < 5; ++i) {
        CAPTURE(i);
        CHECK(top[i].column == want[i].first);
        CHECK(top[i].value == want[i].second);
    }
    CHECK(viewer::top_columns(v, 0).empty());
    CHECK(viewer::top_columns({}, 3).empty());
    const std::vector<viewer::ColumnImportance> all = viewer::top_columns(v, 100);
    REQUIRE(all.size() == v.size());
    // Against a sort done here.
    std::vector<uint64_t> idx(v.size());
    std::iota(idx.begin(), idx.end(), 0);
    std::stable_sort(idx.begin(), idx.end(), [&](uint64_t a, uint64_t b) { return v[a] > v[b]; });
    for (size_t i = 0; i < idx.size(); ++i) {
        CHECK(all[i].column == idx[i]);
        CHECK(all[i].value == v[idx[i]]);
    }
}

// ================================================================ 10. Document

namespace {
void check_document(const viewer::Document& doc, const std::filesystem::path& path) {
    const gguf::Model m = gguf::Model::open(path);
    const gguf::Summary s = gguf::summarize(m);
    // Facts as `gguf inspect` has them.
    const std::vector<gguf::Fact> want = gguf::facts(m, s);
    REQUIRE(doc.facts().size() == want.size());
    for (size_t i = 0; i < want.size(); ++i) {
        CHECK(doc.facts()[i].label == want[i].label);
        CHECK(doc.facts()[i].value == want[i].value);
    }
    CHECK(doc.summary().tensor_bytes == s.tensor_bytes);
    CHECK(doc.summary().parameters == s.parameters);
    CHECK(doc.title() == path.filename().string());
    // One row per tensor.
    REQUIRE(doc.tensors().size() == m.tensors().size());
    std::map<std::optional<uint32_t>, std::pair<uint64_t, uint64_t>> by_layer;
    for (uint32_t i = 0; i < m.tensors().size(); ++i) {
        const gguf::Model::Tensor& t = m.tensors()[i];
        const viewer::TensorRow& r = doc.tensors()[i];
        CAPTURE(t.info->name);
        CHECK(r.index == i);
        CHECK(r.name == t.info->name);
        CHECK(r.type == t.info->type);
        CHECK(r.shape == gguf::shape_text(t.info->dims()));
        CHECK(r.elements == t.info->n_elements);
        CHECK(r.bytes == t.info->n_bytes);
        CHECK(r.part == t.part);
        CHECK(r.offset == m.parts()[t.part].data_section_offset() + t.info->data_offset);
        CHECK(r.layer == gguf::layer_of(t.info->name));
        CHECK_CLOSE(r.bits_per_weight, 8.0 * static_cast<double>(t.info->n_bytes) / static_cast<double>(t.info->n_elements), 1e-12);
        auto& [bytes, elements] = by_layer[gguf::layer_of(t.info->name)];
        bytes += t.info->n_bytes;
        elements += t.info->n_elements;
        const viewer::TensorRow* found = doc.find(t.info->name);
        REQUIRE(found != nullptr);
        CHECK(found->index == i);
    }
    CHECK(doc.find("no.such.tensor") == nullptr);
    CHECK(doc.find("") == nullptr);
    // Bytes by layer: the globals first, then the layers in order.
    const std::vector<viewer::LayerBytes>& lb = doc.bytes_by_layer();
    REQUIRE(lb.size() == by_layer.size());
    size_t k = 0;
    uint64_t total = 0;
    for (const auto& [layer, sums] : by_layer) {  // std::nullopt sorts first
        CAPTURE(k);
        CHECK(lb[k].layer == layer);
        CHECK(lb[k].bytes == sums.first);
        CHECK(lb[k].elements == sums.second);
        total += lb[k].bytes;
        ++k;
    }
    CHECK(total == doc.summary().tensor_bytes);
}
}  // namespace

TEST_CASE("Document::open of a fixture: facts as gguf inspect gives them, one row per tensor, bytes by layer, find") {
    const DemoFile f(gguf::fixtures::mixed_demo_options(), "mixed-demo.gguf");
    const std::unique_ptr<viewer::Document> doc = viewer::Document::open(f.path);
    REQUIRE(doc != nullptr);
    check_document(*doc, f.path);
    CHECK(doc->title() == "mixed-demo.gguf");
    CHECK(doc->model().tensors().size() == f.model.tensors().size());
    const viewer::TensorRow* q = doc->find("blk.1.ffn_down.weight");
    REQUIRE(q != nullptr);
    CHECK(q->type == TypeId::Q6_K);
    CHECK(q->shape == "[512, 256]");
    CHECK(q->layer == 1u);
    CHECK(q->bits_per_weight == 6.5625);
    const viewer::TensorRow* e = doc->find("token_embd.weight");
    REQUIRE(e != nullptr);
    CHECK(!e->layer.has_value());
}

TEST_CASE("Document::open of a split set: rows name their part and their offset in that part") {
    test::TempDir dir;
    const std::vector<std::filesystem::path> parts = gguf::fixtures::write_demo_split(dir.path(), "demo", 3);
    REQUIRE(parts.size() == 3);
    const std::unique_ptr<viewer::Document> doc = viewer::Document::open(parts[0]);
    check_document(*doc, parts[0]);
    std::set<uint32_t> seen;
    for (const viewer::TensorRow& r : doc->tensors()) seen.insert(r.part);
    CHECK(seen == std::set<uint32_t>{0, 1, 2});
}

TEST_CASE("the mix map puts blk.N.<role>.weight in its cell, roles of the tensors mixes choose a type for, the rest in globals") {
    const DemoFile f(gguf::fixtures::mixed_demo_options());
    const std::unique_ptr<viewer::Document> doc = viewer::Document::open(f.path);
    const viewer::MixMap& mm = doc->mix_map();
    const gguf::Model& m = f.model;
    // Roles: per-layer stems of the llama table, in its order, that the file has, without
    // the ones llama.cpp keeps in float (the norms).
    const gguf::Architecture* arch = gguf::find_architecture("llama");
    REQUIRE(arch != nullptr);
    std::vector<std::string> roles;
    for (gguf::TensorRole role : arch->tensors) {
        const gguf::TensorKind* k = gguf::find_tensor_kind(role);
        if (!k->per_layer || k->kept) continue;
        const std::string stem(k->stem);
        if (m.find_tensor("blk.0." + stem + ".weight") || m.find_tensor("blk.1." + stem + ".weight")) roles.push_back(stem);
    }
    CHECK(mm.roles == roles);
    CHECK(mm.roles == std::vector<std::string>{"attn_q", "attn_k", "attn_v", "attn_output", "ffn_gate", "ffn_up", "ffn_down"});
    REQUIRE(mm.layers == 2);
    REQUIRE(mm.cells.size() == mm.layers * mm.roles.size());
    std::set<uint32_t> in_cells;
    for (uint32_t l = 0; l < mm.layers; ++l)
        for (size_t r = 0; r < mm.roles.size(); ++r) {
            const std::string name = fmt::format("blk.{}.{}.weight", l, mm.roles[r]);
            CAPTURE(name);
            const int64_t at = mm.at(l, r);
            const gguf::Model::Tensor* t = m.find_tensor(name);
            if (!t) {
                CHECK(at == -1);
                continue;
            }
            REQUIRE(at >= 0);
            REQUIRE(static_cast<size_t>(at) < m.tensors().size());
            CHECK(m.tensors()[static_cast<size_t>(at)].info->name == name);
            in_cells.insert(static_cast<uint32_t>(at));
        }
    // Globals: every other tensor, in index order.
    std::vector<uint32_t> rest;
    for (uint32_t i = 0; i < m.tensors().size(); ++i)
        if (!in_cells.count(i)) rest.push_back(i);
    CHECK(mm.globals == rest);
    std::set<std::string> global_names;
    for (uint32_t g : mm.globals) global_names.insert(std::string(m.tensors()[g].info->name));
    CHECK(global_names == std::set<std::string>{"token_embd.weight", "blk.0.attn_norm.weight", "blk.0.ffn_norm.weight",
                                                "blk.1.attn_norm.weight", "blk.1.ffn_norm.weight", "output_norm.weight",
                                                "output.weight"});
    // build_mix_map gives the same map.
    const viewer::MixMap again = viewer::build_mix_map(m);
    CHECK(again.roles == mm.roles);
    CHECK(again.cells == mm.cells);
    CHECK(again.layers == mm.layers);
    CHECK(again.globals == mm.globals);
}

TEST_CASE("the mix map leaves a cell empty (-1) where a layer lacks a role; biases, norms and odd names go to globals") {
    const CustomFile f([](gguf::Writer& w) {
        add_f32(w, "token_embd.weight", {4, 2}, std::vector<float>(8, 1.0f));
        add_f32(w, "blk.0.attn_k.weight", {4, 2}, std::vector<float>(8, 1.0f));
        add_f32(w, "blk.0.attn_q.weight", {4, 2}, std::vector<float>(8, 1.0f));
        add_f32(w, "blk.1.attn_q.weight", {4, 2}, std::vector<float>(8, 1.0f));
        add_f32(w, "blk.2.ffn_down.weight", {4, 2}, std::vector<float>(8, 1.0f));
        add_f32(w, "blk.1.attn_q.bias", {2}, {1.0f, 1.0f});
        add_f32(w, "blk.0.attn_norm.weight", {4}, std::vector<float>(4, 1.0f));
        add_f32(w, "blk.0.something_else.weight", {4}, std::vector<float>(4, 1.0f));
    });
    const viewer::MixMap mm = viewer::build_mix_map(f.model);
    CHECK(mm.roles == std::vector<std::string>{"attn_q", "attn_k", "ffn_down"});  // the table's order, not the file's
    REQUIRE(mm.layers == 3);
    REQUIRE(mm.cells.size() == 9);
    CHECK(mm.at(0, 0) == 2);
    CHECK(mm.at(0, 1) == 1);
    CHECK(mm.at(0, 2) == -1);
    CHECK(mm.at(1, 0) == 3);
    CHECK(mm.at(1, 1) == -1);
    CHECK(mm.at(1, 2) == -1);
    CHECK(mm.at(2, 0) == -1);
    CHECK(mm.at(2, 1) == -1);
    CHECK(mm.at(2, 2) == 4);
    CHECK(mm.globals == std::vector<uint32_t>{0, 5, 6, 7});
}

TEST_CASE("the mix map of a file naming a layer number beyond its tensor count has no grid") {
    const CustomFile f([](gguf::Writer& w) {
        add_f32(w, "token_embd.weight", {4, 2}, std::vector<float>(8, 1.0f));
        add_f32(w, "blk.0.attn_q.weight", {4, 2}, std::vector<float>(8, 1.0f));
        add_f32(w, "blk.4000000000.attn_q.weight", {4, 2}, std::vector<float>(8, 1.0f));
    });
    const viewer::MixMap mm = viewer::build_mix_map(f.model);
    CHECK(mm.roles.empty());
    CHECK(mm.layers == 0);
    CHECK(mm.cells.empty());
    CHECK(mm.globals == std::vector<uint32_t>{0, 1, 2});
    // Just within: layer 2 of a file of 3 tensors still gets its grid.
    const CustomFile g([](gguf::Writer& w) {
        add_f32(w, "blk.0.attn_q.weight", {4, 2}, std::vector<float>(8, 1.0f));
        add_f32(w, "blk.2.attn_q.weight", {4, 2}, std::vector<float>(8, 1.0f));
        add_f32(w, "output.weight", {4, 2}, std::vector<float>(8, 1.0f));
    });
    const viewer::MixMap m2 = viewer::build_mix_map(g.model);
    CHECK(m2.layers == 3);
    CHECK(m2.roles == std::vector<std::string>{"attn_q"});
    CHECK(m2.cells == std::vector<int64_t>{0, -1, 1});
    CHECK(m2.globals == std::vector<uint32_t>{2});
}

TEST_CASE("Document::open of a malformed file throws gguf::Error with File::open's message") {
    test::TempDir dir;
    const auto variants = gguf::fixtures::malformed_variants();
    REQUIRE(!variants.empty());
    for (const gguf::fixtures::Malformed& v : variants) {
        CAPTURE(v.name);
        const std::filesystem::path p = dir / (v.name + ".gguf");
        test::write_bytes(p, v.bytes);
        std::string want;
        try {
            gguf::File::open(p);
        } catch (const gguf::Error& e) {
            want = e.what();
        }
        REQUIRE_MESSAGE(!want.empty(), "File::open accepted it");
        try {
            viewer::Document::open(p);
            FAIL("Document::open accepted a malformed file");
        } catch (const gguf::Error& e) {
            CHECK(std::string(e.what()) == want);
        }
    }
}

// ================================================================ 11. tables

TEST_CASE("select_tensors filters on name and type name ignoring case, and sorts every column both ways, ties by index") {
    const DemoFile f(gguf::fixtures::mixed_demo_options());
    const std::unique_ptr<viewer::Document> doc = viewer::Document::open(f.path);
    const std::vector<viewer::TensorRow>& rows = doc->tensors();
    for (const char* filter : {"", "Q4_k", "F16", "ATTN_Q", "blk.1.", "Weight", "zzz"}) {
        CAPTURE(filter);
        std::vector<uint32_t> match;
        for (const viewer::TensorRow& r : rows)
            if (contains_ci(r.name, filter) || contains_ci(gguf::type_info(r.type).name, filter)) match.push_back(r.index);
        if (std::string_view(filter) == "F16") CHECK(match.size() == 4);  // f16 and bf16: attn_q and attn_output of both layers
        if (std::string_view(filter) == "Q4_k") CHECK(match.size() == 3);  // token_embd and both attn_k
        for (bool ascending : {true, false}) {
            CAPTURE(ascending);
            // Columns with a plain order: checked against a sort done here.
            const std::pair<viewer::TensorColumn, std::function<bool(const viewer::TensorRow&, const viewer::TensorRow&)>> plain[] = {
                {viewer::TensorColumn::Index, [](const auto& a, const auto& b) { return a.index < b.index; }},
                {viewer::TensorColumn::Name, [](const auto& a, const auto& b) { return a.name < b.name; }},
                {viewer::TensorColumn::Elements, [](const auto& a, const auto& b) { return a.elements < b.elements; }},
                {viewer::TensorColumn::Shape,
                 [](const auto& a, const auto& b) { return a.elements != b.elements ? a.elements < b.elements : a.shape < b.shape; }},
                {viewer::TensorColumn::Bytes, [](const auto& a, const auto& b) { return a.bytes < b.bytes; }},
                {viewer::TensorColumn::Offset, [](const auto& a, const auto& b) { return a.offset < b.offset; }},
            };
            for (const auto& [column, less] : plain) {
                CAPTURE(static_cast<int>(column));
                std::vector<uint32_t> want = match;
                std::stable_sort(want.begin(), want.end(), [&, less = less](uint32_t a, uint32_t b) {
                    return ascending ? less(rows[a], rows[b]) : less(rows[b], rows[a]);
                });
                CHECK(viewer::select_tensors(rows, filter, column, ascending) == want);
            }
            // Type (its order between types is not specified): equal types together, in index
            // order, the groups reversed by the other direction.
            for (viewer::TensorColumn column : {viewer::TensorColumn::Type}) {
                CAPTURE(static_cast<int>(column));
                auto key = [&](uint32_t i) { return std::string(gguf::type_info(rows[i].type).name); };
                const std::vector<uint32_t> got = viewer::select_tensors(rows, filter, column, ascending);
                std::vector<uint32_t> sorted_got = got;
                std::sort(sorted_got.begin(), sorted_got.end());
                CHECK(sorted_got == match);
                std::vector<std::string> groups;
                for (size_t i = 0; i < got.size(); ++i) {
                    if (i == 0 || key(got[i]) != key(got[i - 1])) {
                        CHECK_MESSAGE(std::find(groups.begin(), groups.end(), key(got[i])) == groups.end(),
                                      "rows of " << key(got[i]) << " are not together");
                        groups.push_back(key(got[i]));
                    } else {
                        CHECK(got[i] > got[i - 1]);  // ties by index
                    }
                }
                if (!ascending) {
                    std::vector<std::string> up;
                    const std::vector<uint32_t> asc = viewer::select_tensors(rows, filter, column, true);
                    for (size_t i = 0; i < asc.size(); ++i)
                        if (i == 0 || key(asc[i]) != key(asc[i - 1])) up.push_back(key(asc[i]));
                    std::reverse(up.begin(), up.end());
                    CHECK(groups == up);
                }
            }
        }
    }
}

TEST_CASE("search_metadata matches keys and values ignoring case; arrays on their first 64 elements") {
    const DemoFile f(DemoOptions{});
    const gguf::Model& m = f.model;
    auto index_of = [&](std::string_view key) -> uint32_t {
        for (uint32_t i = 0; i < m.kvs().size(); ++i)
            if (m.kvs()[i].key == key) return i;
        FAIL("no key " << key);
        return 0;
    };
    auto search = [&](std::string_view q) {
        std::vector<uint32_t> r = viewer::search_metadata(m, q);
        std::sort(r.begin(), r.end());
        return r;
    };
    std::vector<uint32_t> all(m.kvs().size());
    std::iota(all.begin(), all.end(), 0);
    CHECK(search("") == all);
    // Keys.
    std::vector<uint32_t> attention;
    for (uint32_t i = 0; i < m.kvs().size(); ++i)
        if (contains_ci(m.kvs()[i].key, "llama.attention")) attention.push_back(i);
    CHECK(attention.size() == 3);
    CHECK(search("LLAMA.Attention") == attention);
    // Values: "llama" is also the architecture and the tokenizer model.
    std::vector<uint32_t> llama;
    for (uint32_t i = 0; i < m.kvs().size(); ++i)
        if (contains_ci(m.kvs()[i].key, "llama") || m.kvs()[i].key == "general.architecture" || m.kvs()[i].key == "tokenizer.ggml.model")
            llama.push_back(i);
    CHECK(search("Llama") == llama);
    CHECK(search("GGUFKIT-Demo") == std::vector<uint32_t>{index_of("general.name")});
    // Token 63 is "<0x3C>", within the first 64 elements; token 64, "<0x3D>", is not.
    CHECK(search("<0x3c>") == std::vector<uint32_t>{index_of("tokenizer.ggml.tokens")});
    CHECK(search("<0x3D>").empty());
    CHECK(search("no such text anywhere").empty());
}

TEST_CASE("vocabulary and array_elements give token i as the i-th element; token_type_name has llama.cpp's names") {
    const DemoFile f(DemoOptions{});
    const gguf::Model& m = f.model;
    const gguf::KeyValue* tokens = m.find("tokenizer.ggml.tokens");
    REQUIRE(tokens != nullptr);
    std::vector<std::string> walked;
    for (const gguf::Value v : tokens->value.array()) walked.emplace_back(v.str());
    REQUIRE(walked.size() == 320);

    const std::optional<viewer::Vocabulary> voc = viewer::vocabulary(m);
    REQUIRE(voc.has_value());
    REQUIRE(voc->tokens.size() == 320);
    for (size_t i = 0; i < walked.size(); ++i) CHECK(voc->tokens[i].str() == walked[i]);
    CHECK(voc->tokens[3].str() == "<0x00>");
    REQUIRE(voc->scores.has_value());
    REQUIRE(voc->types.has_value());
    CHECK(voc->scores->size() == 320);
    CHECK(voc->types->size() == 320);
    CHECK(voc->scores->at(300).f32() == -41.0f);
    CHECK(voc->types->at(0).i32() == 2);
    CHECK(voc->types->at(5).i32() == 6);

    const std::vector<gguf::Value> els = viewer::array_elements(tokens->value.array());
    REQUIRE(els.size() == 320);
    for (size_t i = 0; i < walked.size(); ++i) CHECK(els[i].str() == walked[i]);
    const gguf::ArrayView types = m.find("tokenizer.ggml.token_type")->value.array();
    const std::vector<gguf::Value> tv = viewer::array_elements(types);
    REQUIRE(tv.size() == types.size());
    for (uint64_t i = 0; i < types.size(); ++i) CHECK(tv[i].i32() == types.at(i).i32());

    CHECK(viewer::token_type_name(1) == "normal");
    CHECK(viewer::token_type_name(2) == "unknown");
    CHECK(viewer::token_type_name(3) == "control");
    CHECK(viewer::token_type_name(4) == "user");
    CHECK(viewer::token_type_name(5) == "unused");
    CHECK(viewer::token_type_name(6) == "byte");
    CHECK(viewer::token_type_name(0) == "undefined");
    CHECK(viewer::token_type_name(7) == "undefined");
    CHECK(viewer::token_type_name(-1) == "undefined");

    CHECK(viewer::contains_ignoring_case("Blk.0.ATTN_q.weight", "attn_Q"));
    CHECK(viewer::contains_ignoring_case("abc", ""));
    CHECK(!viewer::contains_ignoring_case("ab", "abc"));
    CHECK(!viewer::contains_ignoring_case("attn_k", "attn_q"));
}

TEST_CASE("vocabulary: absent without tokens; scores and types only when they have as many entries") {
    const CustomFile none([](gguf::Writer& w) { add_f32(w, "x.weight", {4}, {1, 2, 3, 4}); });
    CHECK(!viewer::vocabulary(none.model).has_value());
    const CustomFile partial([](gguf::Writer& w) {
        w.set("tokenizer.ggml.tokens", gguf::OwnedValue::strings({"a", "b", "c"}));
        w.set("tokenizer.ggml.scores", gguf::OwnedValue::array(gguf::ValueType::F32, {gguf::OwnedValue::f32(1), gguf::OwnedValue::f32(2)}));
        w.set("tokenizer.ggml.token_type",
              gguf::OwnedValue::array(gguf::ValueType::I32, {gguf::OwnedValue::i32(1), gguf::OwnedValue::i32(3), gguf::OwnedValue::i32(6)}));
    });
    const std::optional<viewer::Vocabulary> v = viewer::vocabulary(partial.model);
    REQUIRE(v.has_value());
    REQUIRE(v->tokens.size() == 3);
    CHECK(v->tokens[2].str() == "c");
    CHECK(!v->scores.has_value());
    REQUIRE(v->types.has_value());
    CHECK(v->types->at(1).i32() == 3);
}

// ================================================================ 12. Worker

TEST_CASE("a worker job's result comes through Worker::get<T>, and a second request for the key does not run it again") {
    std::atomic<int> runs{0};  // before the worker: its jobs use it
    viewer::Worker w;
    auto job = [&](viewer::Progress& p) {
        ++runs;
        p.total = 10;
        p.done = 10;
        return std::any(std::string("forty-two"));
    };
    const viewer::Worker::TaskPtr t = w.request("answer", job);
    REQUIRE(t != nullptr);
    CHECK(t->key == "answer");
    REQUIRE(w.wait_idle(10s));
    CHECK(t->state() == viewer::Worker::State::Done);
    const std::string* r = viewer::Worker::get<std::string>(t);
    REQUIRE(r != nullptr);
    CHECK(*r == "forty-two");
    CHECK(viewer::Worker::get<int>(t) == nullptr);  // another type
    CHECK(viewer::Worker::get<std::string>(nullptr) == nullptr);
    CHECK(t->progress.done.load() == 10);

    const viewer::Worker::TaskPtr again = w.request("answer", job);
    CHECK(again == t);
    REQUIRE(w.wait_idle(10s));
    CHECK(runs.load() == 1);
    CHECK(w.find("answer") == t);
    CHECK(w.find("question") == nullptr);
    CHECK(w.pending() == 0);
}

namespace {
// A job that holds the worker until `release` (or a cancel): the others wait behind it.
// Its state is shared with the job, so it outlives the Blocker if a check fails early.
struct Blocker {
    struct State {
        std::atomic<bool> started{false}, release{false};
    };
    std::shared_ptr<State> s = std::make_shared<State>();
    std::function<std::any(viewer::Progress&)> job() const {
        return [s = s](viewer::Progress& p) -> std::any {
            s->started = true;
            while (!s->release && !p.cancel) std::this_thread::sleep_for(1ms);
            if (p.cancel) throw quant::Cancelled();
            return std::any(0);
        };
    }
    bool wait_started() const {
        return wait_for([this] { return s->started.load(); });
    }
    void release() const { s->release = true; }
};

// Jobs that record the order they run in.
struct Recorder {
    std::mutex mu;
    std::vector<std::string> order;
    std::function<std::any(viewer::Progress&)> job(const std::string& k) {
        return [this, k](viewer::Progress&) {
            std::lock_guard lock(mu);
            order.push_back(k);
            return std::any(k);
        };
    }
    size_t count(const std::string& k) {
        std::lock_guard lock(mu);
        return static_cast<size_t>(std::count(order.begin(), order.end(), k));
    }
};
}  // namespace

TEST_CASE("the worker runs the newest request first; asking again for a waiting key moves it to run next; wait_idle") {
    Recorder rec;
    viewer::Worker w;
    Blocker b;
    w.request("block", b.job());
    REQUIRE(b.wait_started());
    const viewer::Worker::TaskPtr a = w.request("a", rec.job("a"));
    const viewer::Worker::TaskPtr tb = w.request("b", rec.job("b"));
    const viewer::Worker::TaskPtr tc = w.request("c", rec.job("c"));
    w.request("d", rec.job("d"));
    CHECK(a->state() == viewer::Worker::State::Queued);
    CHECK(w.pending() == 5);  // the running one and four waiting
    CHECK(w.request("b", rec.job("b-again")) == tb);  // the same task, now next
    CHECK(w.retry("c", rec.job("c-again")) == tc);  // waiting: retry gives that task
    CHECK(tc->state() == viewer::Worker::State::Queued);
    CHECK(!w.wait_idle(50ms));
    b.release();
    REQUIRE(w.wait_idle(10s));
    CHECK(w.pending() == 0);
    CHECK(rec.order == std::vector<std::string>{"b", "d", "c", "a"});
    REQUIRE(viewer::Worker::get<std::string>(a) != nullptr);
    CHECK(*viewer::Worker::get<std::string>(a) == "a");
    CHECK(rec.count("c-again") == 0);
    CHECK(rec.count("b-again") == 0);
}

TEST_CASE("a request for a key already waiting gives the same task and runs it once; retry of a running one gives it back") {
    std::atomic<int> runs{0}, other{0};
    viewer::Worker w;
    Blocker b;
    const viewer::Worker::TaskPtr blk = w.request("block", b.job());
    REQUIRE(b.wait_started());
    auto counted = [&](viewer::Progress&) {
        ++runs;
        return std::any(1);
    };
    const viewer::Worker::TaskPtr x1 = w.request("x", counted);
    const viewer::Worker::TaskPtr x2 = w.request("x", counted);
    CHECK(x1 == x2);
    CHECK(w.retry("block", [&](viewer::Progress&) {
        ++other;
        return std::any(2);
    }) == blk);
    b.release();
    REQUIRE(w.wait_idle(10s));
    CHECK(runs.load() == 1);
    CHECK(other.load() == 0);
    CHECK(blk->state() == viewer::Worker::State::Done);
}

TEST_CASE("cancel: a waiting task is Cancelled at once and never runs, a running one stops; both stay Cancelled until retry") {
    std::atomic<bool> queued_ran{false};
    std::atomic<int> again_ran{0};
    viewer::Worker w;
    Blocker b;
    const viewer::Worker::TaskPtr running = w.request("spin", b.job());
    REQUIRE(b.wait_started());
    CHECK(running->state() == viewer::Worker::State::Running);
    const viewer::Worker::TaskPtr queued = w.request("queued", [&](viewer::Progress&) {
        queued_ran = true;
        return std::any(1);
    });
    w.cancel("queued");
    CHECK(queued->state() == viewer::Worker::State::Cancelled);  // at once
    w.cancel("spin");
    REQUIRE(w.wait_idle(10s));
    CHECK(running->state() == viewer::Worker::State::Cancelled);
    CHECK(running->progress.cancel.load());
    CHECK(!queued_ran.load());
    CHECK(viewer::Worker::get<int>(running) == nullptr);
    // They stay, Cancelled: a request does not restart them.
    CHECK(w.find("spin") == running);
    CHECK(w.find("queued") == queued);
    auto again = [&](viewer::Progress&) {
        ++again_ran;
        return std::any(5);
    };
    CHECK(w.request("spin", again) == running);
    CHECK(w.request("queued", again) == queued);
    REQUIRE(w.wait_idle(10s));
    CHECK(again_ran.load() == 0);
    CHECK(running->state() == viewer::Worker::State::Cancelled);
    // retry starts afresh.
    const viewer::Worker::TaskPtr fresh = w.retry("spin", again);
    CHECK(fresh != running);
    REQUIRE(w.wait_idle(10s));
    CHECK(again_ran.load() == 1);
    REQUIRE(viewer::Worker::get<int>(fresh) != nullptr);
    CHECK(*viewer::Worker::get<int>(fresh) == 5);
    CHECK(w.find("spin") == fresh);
}

TEST_CASE("cancel_all stops what runs and what waits; finished tasks keep their results") {
    std::atomic<int> ran{0};
    viewer::Worker w;
    const viewer::Worker::TaskPtr done = w.request("done", [](viewer::Progress&) { return std::any(3); });
    REQUIRE(w.wait_idle(10s));
    Blocker b;
    const viewer::Worker::TaskPtr spin = w.request("spin", b.job());
    REQUIRE(b.wait_started());
    std::vector<viewer::Worker::TaskPtr> waiting;
    for (const char* k : {"q1", "q2"}) waiting.push_back(w.request(k, [&](viewer::Progress&) {
        ++ran;
        return std::any(1);
    }));
    w.cancel_all();
    REQUIRE(w.wait_idle(10s));
    CHECK(spin->state() == viewer::Worker::State::Cancelled);
    for (const auto& t : waiting) CHECK(t->state() == viewer::Worker::State::Cancelled);
    CHECK(ran.load() == 0);
    CHECK(w.pending() == 0);
    CHECK(done->state() == viewer::Worker::State::Done);
    REQUIRE(viewer::Worker::get<int>(done) != nullptr);
    CHECK(*viewer::Worker::get<int>(done) == 3);
}

TEST_CASE("cancel_prefix cancels only the tasks whose key starts with the prefix") {
    Recorder rec;
    viewer::Worker w;
    Blocker b;
    const viewer::Worker::TaskPtr spin = w.request("one.gguf/values", b.job());
    REQUIRE(b.wait_started());
    const viewer::Worker::TaskPtr x = w.request("one.gguf/error", rec.job("x"));
    const viewer::Worker::TaskPtr y = w.request("two.gguf/values", rec.job("y"));
    const viewer::Worker::TaskPtr z = w.request("one.gguf/compare", rec.job("z"));
    w.cancel_prefix("one.gguf/");
    REQUIRE(w.wait_idle(10s));
    CHECK(spin->state() == viewer::Worker::State::Cancelled);
    CHECK(x->state() == viewer::Worker::State::Cancelled);
    CHECK(z->state() == viewer::Worker::State::Cancelled);
    CHECK(y->state() == viewer::Worker::State::Done);
    CHECK(rec.order == std::vector<std::string>{"y"});
}

TEST_CASE("a throwing job gives Failed with its message; a request keeps it Failed, retry starts it again") {
    std::atomic<int> runs{0};
    viewer::Worker w;
    auto job = [&](viewer::Progress&) -> std::any {
        ++runs;
        throw std::runtime_error("the tensor has no data");
    };
    const viewer::Worker::TaskPtr t = w.request("bad", job);
    REQUIRE(w.wait_idle(10s));
    CHECK(t->state() == viewer::Worker::State::Failed);
    CHECK(t->error() == "the tensor has no data");
    CHECK(viewer::Worker::get<int>(t) == nullptr);
    CHECK(w.request("bad", job) == t);
    REQUIRE(w.wait_idle(10s));
    CHECK(runs.load() == 1);
    CHECK(t->state() == viewer::Worker::State::Failed);
    CHECK(t->error() == "the tensor has no data");
    const viewer::Worker::TaskPtr again = w.retry("bad", job);
    CHECK(again != t);
    REQUIRE(w.wait_idle(10s));
    CHECK(runs.load() == 2);
    CHECK(again->state() == viewer::Worker::State::Failed);
    CHECK(w.find("bad") == again);
}

TEST_CASE("a worker keeps `capacity` finished tasks, dropping the least recently requested") {
    Recorder rec;
    viewer::Worker w(2);
    w.request("a", rec.job("a"));
    REQUIRE(w.wait_idle(10s));
    w.request("b", rec.job("b"));
    REQUIRE(w.wait_idle(10s));
    w.request("a", rec.job("a"));  // a is now the most recent
    REQUIRE(w.wait_idle(10s));
    w.request("c", rec.job("c"));
    REQUIRE(w.wait_idle(10s));
    CHECK(w.find("b") == nullptr);
    CHECK(w.find("a") != nullptr);
    CHECK(w.find("c") != nullptr);
    w.request("b", rec.job("b"));
    REQUIRE(w.wait_idle(10s));
    CHECK(rec.count("a") == 1);
    CHECK(rec.count("b") == 2);
    CHECK(rec.count("c") == 1);
}

TEST_CASE("failed and cancelled tasks count as finished; waiting and running ones are never dropped") {
    std::atomic<int> failing{0};
    viewer::Worker w(2);
    auto fail = [&](viewer::Progress&) -> std::any {
        ++failing;
        throw std::runtime_error("no");
    };
    w.request("f1", fail);
    REQUIRE(w.wait_idle(10s));
    w.request("f2", fail);
    REQUIRE(w.wait_idle(10s));
    w.request("ok", [](viewer::Progress&) { return std::any(1); });
    REQUIRE(w.wait_idle(10s));
    CHECK(w.find("f1") == nullptr);  // the least recently requested of three finished
    CHECK(w.find("f2") != nullptr);
    CHECK(w.find("ok") != nullptr);

    // Capacity 1: a running task and four waiting ones all stay while pending.
    viewer::Worker one(1);
    Blocker b;
    one.request("block", b.job());
    REQUIRE(b.wait_started());
    for (const char* k : {"p1", "p2", "p3", "p4"}) one.request(k, [](viewer::Progress&) { return std::any(1); });
    for (const char* k : {"block", "p1", "p2", "p3", "p4"}) CHECK_MESSAGE(one.find(k) != nullptr, k);
    b.release();
    REQUIRE(one.wait_idle(10s));
    size_t kept = 0;
    for (const char* k : {"block", "p1", "p2", "p3", "p4"}) kept += one.find(k) != nullptr;
    CHECK(kept == 1);
}

TEST_CASE("a worker keeps no more than `capacity` finished tasks after several finish without a new request") {
    viewer::Worker w(2);
    Blocker b;
    w.request("block", b.job());
    REQUIRE(b.wait_started());
    for (const char* k : {"a", "b", "c"}) w.request(k, [](viewer::Progress&) { return std::any(1); });
    b.release();
    REQUIRE(w.wait_idle(10s));
    size_t kept = 0;
    for (const char* k : {"block", "a", "b", "c"}) kept += w.find(k) != nullptr;
    CHECK(kept == 2);
    CHECK(w.find("block") == nullptr);  // the least recently requested
    CHECK(w.find("c") != nullptr);      // the most recently requested
}

TEST_CASE("the default worker keeps the 256 most recently requested results") {
    viewer::Worker w;
    for (int i = 0; i < 300; ++i) {
        w.request(fmt::format("k{}", i), [i](viewer::Progress&) { return std::any(i); });
        REQUIRE(w.wait_idle(10s));
    }
    for (int i = 0; i < 300; ++i) {
        CAPTURE(i);
        CHECK((w.find(fmt::format("k{}", i)) != nullptr) == (i >= 44));
    }
}

TEST_CASE("destroying a worker with a running and a queued job returns promptly and runs nothing more") {
    std::atomic<bool> queued_ran{false};
    Blocker b;
    viewer::Worker::TaskPtr queued;
    const auto start = std::chrono::steady_clock::now();
    {
        viewer::Worker w;
        w.request("spin", b.job());
        REQUIRE(b.wait_started());
        queued = w.request("slow", [&](viewer::Progress&) {
            queued_ran = true;
            std::this_thread::sleep_for(3s);
            return std::any(1);
        });
    }
    const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    CHECK(seconds < 2.0);
    CHECK(!queued_ran.load());
    CHECK(queued->state() != viewer::Worker::State::Done);
}

// ================================================================ 13. files

TEST_CASE("list_directory: folders first, then .gguf files of any case, each by name, hidden entries left out") {
    test::TempDir dir;
    namespace fs = std::filesystem;
    for (const char* d : {"d2", "d1", ".hidden-dir", "e.gguf"}) fs::create_directory(dir / d);
    const std::pair<const char*, size_t> files[] = {{"c.gguf", 7}, {"a.GGUF", 3}, {"b.GgUf", 0}, {"notes.txt", 5},
                                                    {".hidden.gguf", 2}, {"x.gguf.bak", 1}, {"gguf", 4}};
    for (const auto& [name, size] : files) test::write_bytes(dir / name, std::vector<uint8_t>(size, 'x'));

    const std::vector<viewer::DirEntry> g = viewer::list_directory(dir.path(), true);
    std::vector<std::string> names;
    for (const viewer::DirEntry& e : g) names.push_back(e.name);
    CHECK(names == std::vector<std::string>{"d1", "d2", "e.gguf", "a.GGUF", "b.GgUf", "c.gguf"});
    REQUIRE(g.size() == 6);
    for (size_t i = 0; i < 3; ++i) CHECK(g[i].directory);
    for (size_t i = 3; i < 6; ++i) CHECK(!g[i].directory);
    CHECK(g[3].size == 3);
    CHECK(g[4].size == 0);
    CHECK(g[5].size == 7);

    const std::vector<viewer::DirEntry> all = viewer::list_directory(dir.path(), false);
    names.clear();
    for (const viewer::DirEntry& e : all) names.push_back(e.name);
    CHECK(names == std::vector<std::string>{"d1", "d2", "e.gguf", "a.GGUF", "b.GgUf", "c.gguf", "gguf", "notes.txt", "x.gguf.bak"});
    if (all.size() == 9) CHECK(all[7].size == 5);

    CHECK_THROWS_AS(viewer::list_directory(dir / "missing", true), std::filesystem::filesystem_error);

    SUBCASE("an entry that cannot be examined (a dangling link) is skipped") {
        fs::create_symlink(dir / "nowhere", dir / "broken.gguf");
        std::vector<std::string> n;
        for (const viewer::DirEntry& e : viewer::list_directory(dir.path(), true)) n.push_back(e.name);
        CHECK(std::find(n.begin(), n.end(), "broken.gguf") == n.end());
        CHECK(n.size() == 6);
    }
}

TEST_CASE("recent files: most recent first, no duplicates, at most `limit`, persisted through a temporary file and a rename") {
    test::TempDir dir;
    namespace fs = std::filesystem;
    fs::create_directory(dir / "cfg");
    const fs::path store = dir / "cfg" / "recent-files";
    const std::string a = (dir / "a.gguf").string(), b = (dir / "b.gguf").string(), c = (dir / "c.gguf").string(),
                      d = (dir / "d.gguf").string();
    {
        viewer::RecentFiles r(store, 3);
        CHECK(r.items().empty());
        CHECK(r.add(a));
        CHECK(r.add(b));
        CHECK(r.add(c));
        CHECK(r.items() == std::vector<std::string>{c, b, a});
        CHECK(r.add(a));  // moves to the front, once
        CHECK(r.items() == std::vector<std::string>{a, c, b});
        CHECK(r.add(d));  // b falls off the end
        CHECK(r.items() == std::vector<std::string>{d, a, c});
    }
    // The store: one path a line; nothing else left in its folder.
    std::vector<std::string> lines;
    {
        const std::string text = test::read_text(store);
        size_t start = 0;
        while (start < text.size()) {
            const size_t nl = text.find('\n', start);
            const std::string line = text.substr(start, nl == std::string::npos ? std::string::npos : nl - start);
            if (!line.empty()) lines.push_back(line);
            if (nl == std::string::npos) break;
            start = nl + 1;
        }
    }
    CHECK(lines == std::vector<std::string>{d, a, c});
    std::vector<std::string> in_folder;
    for (const fs::directory_entry& e : fs::directory_iterator(dir / "cfg")) in_folder.push_back(e.path().filename().string());
    CHECK(in_folder == std::vector<std::string>{"recent-files"});
    {
        viewer::RecentFiles again(store, 3);
        CHECK(again.items() == std::vector<std::string>{d, a, c});
        again.remove(a);
        CHECK(again.items() == std::vector<std::string>{d, c});
        viewer::RecentFiles small(store, 2);
        CHECK(small.items().size() <= 2);
    }
    {
        // A relative path is kept absolute.
        viewer::RecentFiles r(store, 10);
        CHECK(r.add("relative-name.gguf"));
        REQUIRE(!r.items().empty());
        CHECK(r.items().front() == fs::absolute("relative-name.gguf").string());
    }
    for (const fs::directory_entry& e : fs::directory_iterator(dir / "cfg")) CHECK(e.path().filename() == "recent-files");
}

TEST_CASE("recent files: a store that cannot be written is reported by add, and the list still changes") {
    test::TempDir dir;
    test::write_bytes(dir / "a-file", {1, 2, 3});
    viewer::RecentFiles r(dir / "a-file" / "recent-files", 5);  // a file where the folder should be
    CHECK(!r.add(dir / "x.gguf"));
    CHECK(r.items() == std::vector<std::string>{(dir / "x.gguf").string()});
}

TEST_CASE("the recent files store lives under $XDG_CONFIG_HOME, else ~/.config, else nowhere") {
    const char* xdg = std::getenv("XDG_CONFIG_HOME");
    const char* home = std::getenv("HOME");
    const std::optional<std::string> saved_xdg = xdg ? std::optional<std::string>(xdg) : std::nullopt;
    const std::optional<std::string> saved_home = home ? std::optional<std::string>(home) : std::nullopt;
    ::setenv("XDG_CONFIG_HOME", "/some/config", 1);
    ::setenv("HOME", "/some/home", 1);
    CHECK(viewer::RecentFiles::default_store() == std::filesystem::path("/some/config/ggufkit/recent-files"));
    ::unsetenv("XDG_CONFIG_HOME");
    CHECK(viewer::RecentFiles::default_store() == std::filesystem::path("/some/home/.config/ggufkit/recent-files"));
    ::unsetenv("HOME");
    CHECK(viewer::RecentFiles::default_store().empty());
    if (saved_xdg) ::setenv("XDG_CONFIG_HOME", saved_xdg->c_str(), 1);
    if (saved_home) ::setenv("HOME", saved_home->c_str(), 1);
}
