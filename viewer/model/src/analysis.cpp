#include "viewer/analysis.h"

#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <mutex>
#include <stdexcept>
#include <vector>

#include "gguf/render.h"
#include "kernels/kernels.h"
#include "quant/executor.h"
#include "quant/imatrix.h"
#include "quant/quant.h"

namespace viewer {

double Progress::fraction() const {
    const int64_t t = total.load(std::memory_order_relaxed);
    return t > 0 ? std::min(1.0, static_cast<double>(done.load(std::memory_order_relaxed)) / static_cast<double>(t)) : 0.0;
}

namespace {

constexpr int64_t kValuesPerRange = int64_t{1} << 16;

struct Shape {
    uint64_t ne0 = 1;   // values per row
    uint64_t rows = 1;  // all rows of all matrices
};

Shape shape_of(const gguf::Model::Tensor& t) {
    Shape s;
    const auto dims = t.info->dims();
    s.ne0 = dims.empty() ? 1 : dims[0];
    s.rows = s.ne0 ? t.info->n_elements / s.ne0 : 0;
    return s;
}

std::string tensor_label(const gguf::Model::Tensor& t) { return std::string(t.info->name); }

void require_dequantizable(const gguf::Model::Tensor& t) {
    if (!kernels::can_dequantize(t.info->type))
        throw std::invalid_argument(fmt::format("tensor {}: its type {} cannot be dequantized", tensor_label(t),
                                                gguf::type_info(t.info->type).name));
}

// Calls fn(first_row, values) for every range of rows of the tensor, dequantized, on up to
// `threads` threads; the ranges depend on the row length alone. Progress counts values from
// `progress_base`.
template <class Fn>
void for_each_rows(const gguf::Model& model, const gguf::Model::Tensor& t, int threads, Progress* progress, int64_t progress_base,
                   Fn&& fn) {
    const Shape s = shape_of(t);
    const std::span<const uint8_t> data = model.tensor_data(t);
    const uint64_t row_bytes = s.rows ? data.size() / s.rows : 0;
    quant::RunOptions o;
    o.threads = quant::thread_count(threads);
    o.grain = std::max<int64_t>(1, kValuesPerRange / static_cast<int64_t>(std::max<uint64_t>(1, s.ne0)));
    if (progress) {
        o.cancel = &progress->cancel;
        o.progress = [progress, progress_base, ne0 = static_cast<int64_t>(s.ne0)](int64_t done, int64_t) {
            progress->done.store(progress_base + done * ne0, std::memory_order_relaxed);
        };
    }
    quant::default_executor().run(static_cast<int64_t>(s.rows), [&](int64_t begin, int64_t end) {
        std::vector<float> values(static_cast<size_t>((end - begin) * static_cast<int64_t>(s.ne0)));
        kernels::dequantize(t.info->type, data.subspan(static_cast<size_t>(begin) * row_bytes, static_cast<size_t>(end - begin) * row_bytes),
                            values);
        fn(begin / o.grain, static_cast<uint64_t>(begin), std::span<const float>(values));
    }, o);
}

void begin_progress(Progress* p, int64_t total) {
    if (!p) return;
    p->total.store(total);
    p->done.store(0);
}

int64_t range_count(const gguf::Model::Tensor& t) {
    const Shape s = shape_of(t);
    const int64_t grain = std::max<int64_t>(1, kValuesPerRange / static_cast<int64_t>(std::max<uint64_t>(1, s.ne0)));
    return s.rows ? (static_cast<int64_t>(s.rows) - 1) / grain + 1 : 0;
}

}  // namespace

ValueAnalysis analyze_values(const gguf::Model& model, const gguf::Model::Tensor& t, const ValueOptions& options, Progress* progress) {
    require_dequantizable(t);
    const Shape s = shape_of(t);
    const int64_t n = static_cast<int64_t>(t.info->n_elements);
    begin_progress(progress, 2 * n);
    ValueAnalysis out;

    // Pass 1: statistics (kept per range and combined in order: the same figures for any
    // thread count) and the heat map.
    const size_t n_parts = static_cast<size_t>(range_count(t));
    std::vector<ValueStats> parts(n_parts);
    std::optional<HeatMapBuilder> heat;
    if (t.info->n_dims >= 2 && s.rows > 0) heat.emplace(s.rows, s.ne0, options.heat_rows, options.heat_cols);
    std::vector<std::optional<HeatMapBuilder>> heat_parts(heat ? n_parts : 0);
    for_each_rows(model, t, options.threads, progress, 0, [&](int64_t part, uint64_t first_row, std::span<const float> v) {
        parts[static_cast<size_t>(part)].add(v);
        if (heat) {
            HeatMapBuilder& h = heat_parts[static_cast<size_t>(part)].emplace(heat->part(first_row, first_row + v.size() / s.ne0));
            h.add_rows(first_row, v);
        }
    });
    for (const ValueStats& p : parts) out.stats.merge(p);
    if (heat) {
        for (const auto& p : heat_parts)
            if (p) heat->merge(*p);
        out.heat = heat->finish();
    }

    // Pass 2: the histogram over [min, max].
    out.histogram = Histogram::over(out.stats.min, out.stats.max, std::max<size_t>(1, options.bins));
    std::mutex hist_mutex;
    for_each_rows(model, t, options.threads, progress, n, [&](int64_t, uint64_t, std::span<const float> v) {
        Histogram local = Histogram::over(out.histogram.lo, out.histogram.hi, out.histogram.counts.size());
        local.add(v);
        std::lock_guard lock(hist_mutex);
        out.histogram.merge(local);
    });
    if (progress) progress->done.store(2 * n);
    return out;
}

namespace {
constexpr size_t kErrorBins = 4096;

// The histogram of the differences of the pieces a computation sees (observer()), filled from
// the executor's threads: the subtraction and counting outside the lock, the merge inside.
struct ErrorCollector {
    SymmetricHistogram histogram{kErrorBins};
    std::mutex mutex;
    kernels::RoundTripObserver observer() {
        return [this](std::span<const float> a, std::span<const float> b) {
            std::vector<float> e(a.size());
            for (size_t i = 0; i < a.size(); ++i) e[i] = a[i] - b[i];
            SymmetricHistogram local(kErrorBins);
            local.add(e);
            std::lock_guard lock(mutex);
            histogram.merge(local);
        };
    }
};

}  // namespace

ErrorAnalysis analyze_error(const gguf::Model& model, const gguf::Model::Tensor& t, gguf::TypeId target,
                            std::span<const float> importance, int threads, Progress* progress) {
    require_dequantizable(t);
    const gguf::TypeInfo& info = gguf::type_info(target);
    const Shape s = shape_of(t);
    if (!quant::can_quantize(target))
        throw std::invalid_argument(fmt::format("tensor {}: {} is not a type one can quantize to", tensor_label(t), info.name));
    if (info.block_size == 0 || s.ne0 % info.block_size != 0)
        throw std::invalid_argument(fmt::format("tensor {}: its rows of {} values are not a whole number of {}'s blocks of {}",
                                                tensor_label(t), s.ne0, info.name, info.block_size));
    if (quant::needs_importance(target) && importance.empty())
        throw std::invalid_argument(fmt::format("tensor {}: {} needs an importance matrix (open one beside the model)",
                                                tensor_label(t), info.name));
    const int64_t n = static_cast<int64_t>(t.info->n_elements);
    begin_progress(progress, n);
    ErrorCollector errors;
    ErrorAnalysis out;
    try {
        out.stats = kernels::tensor_round_trip_error(
            t.info->type, model.tensor_data(t), t.info->dims(), target, importance, quant::thread_count(threads),
            [progress](int64_t done, int64_t) {
                if (progress) progress->done.store(done, std::memory_order_relaxed);
            },
            errors.observer(), progress ? &progress->cancel : nullptr);
    } catch (const std::invalid_argument& e) {
        throw std::invalid_argument(fmt::format("tensor {} as {}: {}", tensor_label(t), info.name, e.what()));
    }
    out.histogram = errors.histogram.histogram().trimmed();
    out.bits_per_weight = gguf::bits_per_weight(target);
    if (progress) progress->done.store(n);
    return out;
}

ErrorAnalysis compare_tensors(const gguf::Model& model_a, const gguf::Model::Tensor& a, const gguf::Model& model_b,
                              const gguf::Model::Tensor& b, int threads, Progress* progress) {
    require_dequantizable(a);
    require_dequantizable(b);
    const auto da = a.info->dims(), db = b.info->dims();
    if (!std::equal(da.begin(), da.end(), db.begin(), db.end()))
        throw std::invalid_argument(fmt::format("tensor {} has shape {} in one file and {} in the other", tensor_label(a),
                                                gguf::shape_text(da), gguf::shape_text(db)));
    const Shape s = shape_of(a);
    const int64_t n = static_cast<int64_t>(a.info->n_elements);
    begin_progress(progress, n);
    ErrorCollector errors;
    ErrorAnalysis out;
    out.stats = kernels::compare_rows(
        a.info->type, model_a.tensor_data(a), b.info->type, model_b.tensor_data(b), static_cast<int64_t>(s.rows), static_cast<int64_t>(s.ne0),
        quant::thread_count(threads),
        [progress, ne0 = static_cast<int64_t>(s.ne0)](int64_t done, int64_t) {
            if (progress) progress->done.store(done * ne0, std::memory_order_relaxed);
        },
        errors.observer(), progress ? &progress->cancel : nullptr);
    out.histogram = errors.histogram.histogram().trimmed();
    out.bits_per_weight = gguf::average_bits_per_weight(b.info->n_bytes, b.info->n_elements);
    if (progress) progress->done.store(n);
    return out;
}

std::span<const float> importance_for(const quant::ImportanceMatrix& imatrix, const gguf::Model::Tensor& t) {
    const std::vector<float>* w = imatrix.find(t.info->name);
    if (!w) return {};
    const auto dims = t.info->dims();
    const uint64_t ne0 = dims.empty() ? 1 : dims[0];
    const uint64_t experts = dims.size() >= 3 ? dims[2] : 1;
    if (w->size() != ne0 && w->size() != ne0 * experts)
        throw std::invalid_argument(fmt::format("the importance matrix has {} values for tensor {}, whose rows have {}{}", w->size(),
                                                tensor_label(t), ne0,
                                                experts > 1 ? fmt::format(" ({} for its {} experts)", ne0 * experts, experts) : ""));
    return *w;
}

std::vector<ColumnImportance> top_columns(std::span<const float> importance, size_t top) {
    std::vector<ColumnImportance> all(importance.size());
    for (size_t i = 0; i < importance.size(); ++i) all[i] = {i, importance[i]};
    const size_t k = std::min(top, all.size());
    std::partial_sort(all.begin(), all.begin() + static_cast<std::ptrdiff_t>(k), all.end(), [](const ColumnImportance& x, const ColumnImportance& y) {
        return x.value != y.value ? x.value > y.value : x.column < y.column;
    });
    all.resize(k);
    return all;
}

}  // namespace viewer
