#include "kernels/error_stats.h"

#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <limits>
#include <functional>
#include <vector>

#include "kernels/kernels.h"
#include "quant/executor.h"
#include "quant/quant.h"

namespace kernels {

double ErrorStats::rmse() const { return values ? std::sqrt(sum_sq_error / static_cast<double>(values)) : 0.0; }

double ErrorStats::snr_db() const {
    if (sum_sq_error == 0) return std::numeric_limits<double>::infinity();
    return 10.0 * std::log10(sum_sq_signal / sum_sq_error);
}

double ErrorStats::cosine() const {
    if (sum_sq_signal == 0 || sum_sq_result == 0) return sum_sq_signal == sum_sq_result ? 1.0 : 0.0;
    return sum_product / std::sqrt(sum_sq_signal * sum_sq_result);
}

double ErrorStats::weighted_rmse() const {
    return sum_weight > 0 ? std::sqrt(sum_weighted_sq_error / sum_weight) : std::numeric_limits<double>::quiet_NaN();
}

void ErrorStats::add(std::span<const float> x, std::span<const float> y, std::span<const float> weights) {
    for (size_t i = 0; i < x.size(); ++i) {
        const double a = x[i], b = y[i], e = a - b;
        sum_sq_signal += a * a;
        sum_sq_result += b * b;
        sum_product += a * b;
        sum_sq_error += e * e;
        if (!(std::fabs(e) <= max_abs_error)) max_abs_error = std::fabs(e);  // NaN wins: it shows
    }
    if (!weights.empty())
        for (size_t i = 0; i < x.size(); ++i) {
            const double w = weights[i % weights.size()], e = static_cast<double>(x[i]) - static_cast<double>(y[i]);
            sum_weighted_sq_error += w * e * e;
            sum_weight += w;
        }
    values += x.size();
}

void ErrorStats::merge(const ErrorStats& o) {
    values += o.values;
    sum_sq_signal += o.sum_sq_signal;
    sum_sq_error += o.sum_sq_error;
    if (!(o.max_abs_error <= max_abs_error)) max_abs_error = o.max_abs_error;
    sum_sq_result += o.sum_sq_result;
    sum_product += o.sum_product;
    sum_weighted_sq_error += o.sum_weighted_sq_error;
    sum_weight += o.sum_weight;
}

namespace {

// Pairs of value rows over n_rows rows, a few rows at a time on the executor: fill(r, k, x, y)
// writes rows [r, r + k) of both sides into x and y (k x n_per_row values each). Ranges of a
// size that depends on the row length alone, their sums kept apart and added in order: the
// figures are the same bits whatever the number of threads.
template <class Fill>
ErrorStats over_rows(int64_t n_rows, int64_t n_per_row, int threads, const std::function<void(int64_t, int64_t)>& progress,
                     const RoundTripObserver& observe, const std::atomic<bool>* cancel, std::span<const float> weights, Fill&& fill) {
    constexpr int64_t kRowsAtOnce = 16, kValuesPerRange = int64_t{1} << 16;
    quant::RunOptions o;
    o.threads = std::max(1, threads);
    o.grain = std::max(kRowsAtOnce, kValuesPerRange / std::max<int64_t>(1, n_per_row));
    o.progress = progress;
    o.cancel = cancel;
    std::vector<ErrorStats> parts(static_cast<size_t>(n_rows > 0 ? (n_rows - 1) / o.grain + 1 : 0));
    quant::default_executor().run(n_rows, [&](int64_t begin, int64_t end) {
        std::vector<float> x(static_cast<size_t>(std::min(kRowsAtOnce, end - begin) * n_per_row)), y(x.size());
        ErrorStats s;
        for (int64_t r = begin; r < end; r += kRowsAtOnce) {
            const int64_t k = std::min(kRowsAtOnce, end - r);
            const size_t n = static_cast<size_t>(k * n_per_row);
            const std::span<float> xs(x.data(), n), ys(y.data(), n);
            fill(r, k, xs, ys);
            if (observe) observe(xs, ys);
            s.add(xs, ys, weights);
        }
        parts[static_cast<size_t>(begin / o.grain)] = s;
    }, o);
    ErrorStats total;
    for (const ErrorStats& p : parts) total.merge(p);
    return total;
}

}  // namespace

ErrorStats round_trip_error(TypeId source_type, std::span<const uint8_t> source, int64_t n_rows, int64_t n_per_row,
                            TypeId target, std::span<const float> importance, int threads, const std::function<void(int64_t, int64_t)>& progress,
                            const RoundTripObserver& observe, const std::atomic<bool>* cancel) {
    const uint64_t source_row = quant::row_bytes(source_type, n_per_row);
    const uint64_t target_row = quant::row_bytes(target, n_per_row);
    if (source.size() != source_row * static_cast<uint64_t>(n_rows))
        throw std::invalid_argument("round_trip_error: source size does not match its rows");
    return over_rows(n_rows, n_per_row, threads, progress, observe, cancel, importance, [&](int64_t r, int64_t k, std::span<float> x, std::span<float> y) {
        thread_local std::vector<uint8_t> q;
        q.resize(target_row * static_cast<uint64_t>(k));
        const auto first = static_cast<uint64_t>(r), rows = static_cast<uint64_t>(k);
        dequantize(source_type, source.subspan(source_row * first, source_row * rows), x);
        quant::quantize(target, x, n_per_row, importance, q, r);
        dequantize(target, q, y);
    });
}

ErrorStats compare_rows(TypeId type_a, std::span<const uint8_t> a, TypeId type_b, std::span<const uint8_t> b, int64_t n_rows,
                        int64_t n_per_row, int threads, const std::function<void(int64_t, int64_t)>& progress,
                        const RoundTripObserver& observe, const std::atomic<bool>* cancel) {
    const uint64_t row_a = quant::row_bytes(type_a, n_per_row), row_b = quant::row_bytes(type_b, n_per_row);
    if (a.size() != row_a * static_cast<uint64_t>(n_rows) || b.size() != row_b * static_cast<uint64_t>(n_rows))
        throw std::invalid_argument("compare_rows: a tensor's size does not match its rows");
    return over_rows(n_rows, n_per_row, threads, progress, observe, cancel, {}, [&](int64_t r, int64_t k, std::span<float> x, std::span<float> y) {
        const auto first = static_cast<uint64_t>(r), rows = static_cast<uint64_t>(k);
        dequantize(type_a, a.subspan(row_a * first, row_a * rows), x);
        dequantize(type_b, b.subspan(row_b * first, row_b * rows), y);
    });
}

ErrorStats tensor_round_trip_error(TypeId source_type, std::span<const uint8_t> source, std::span<const uint64_t> shape,
                                   TypeId target, std::span<const float> importance, int threads,
                                   const std::function<void(int64_t, int64_t)>& progress, const RoundTripObserver& observe,
                                   const std::atomic<bool>* cancel) {
    uint64_t dims[4] = {1, 1, 1, 1};
    for (size_t i = 0; i < shape.size() && i < 4; ++i) dims[i] = shape[i];
    const int64_t n_per_row = static_cast<int64_t>(dims[0]), rows = static_cast<int64_t>(dims[1]);
    const uint64_t matrices = dims[2] * dims[3];
    if (!importance.empty() && importance.size() != dims[0] && importance.size() != dims[0] * matrices)
        throw std::invalid_argument(fmt::format("importance has {} values; the tensor needs {} (or {} per expert, {} in all)",
                                                importance.size(), dims[0], dims[0], dims[0] * matrices));
    const uint64_t matrix_bytes = quant::row_bytes(source_type, n_per_row) * static_cast<uint64_t>(rows);
    ErrorStats total;
    for (uint64_t m = 0; m < matrices; ++m) {
        const std::span<const float> w = importance.empty() || importance.size() == dims[0] ? importance
                                                                                          : importance.subspan(m * dims[0], dims[0]);
        // Progress over the whole tensor: the matrices before this one are done.
        std::function<void(int64_t, int64_t)> matrix_progress;
        if (progress)
            matrix_progress = [&, m](int64_t done, int64_t) {
                progress((static_cast<int64_t>(m) * rows + done) * n_per_row, static_cast<int64_t>(matrices) * rows * n_per_row);
            };
        total.merge(round_trip_error(source_type, source.subspan(m * matrix_bytes, matrix_bytes), rows, n_per_row, target, w, threads,
                                     matrix_progress, observe, cancel));
    }
    return total;
}

}  // namespace kernels
