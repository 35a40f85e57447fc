// What quantizing to a type does to a tensor: the error of a round trip (dequantize the
// source, quantize to the target, dequantize again), measured over the whole tensor. Both
// dequantizations run on the kernels of the active path (the same bits on every path).
#pragma once

#include <atomic>
#include <cstdint>
#include <functional>
#include <span>
#include <vector>

#include "gguf/types.h"

namespace kernels {

using gguf::TypeId;

struct ErrorStats {
    uint64_t values = 0;
    double sum_sq_signal = 0;  // sum of x^2
    double sum_sq_error = 0;   // sum of (x - y)^2
    double max_abs_error = 0;
    double sum_sq_result = 0;  // sum of y^2
    double sum_product = 0;    // sum of x y
    // With importance weights (one per column): sum of w (x - y)^2 and of w.
    double sum_weighted_sq_error = 0;
    double sum_weight = 0;

    double rmse() const;
    double snr_db() const;  // 10 log10(signal / error); +inf for an exact round trip
    double cosine() const;  // x.y / (|x| |y|); 1 when both are all zeros, 0 when one is
    // sqrt(sum w (x - y)^2 / sum w), w the importance of the value's column; NaN without weights.
    double weighted_rmse() const;
    // Adds the pairs (x[i], y[i]) (spans of the same length); with `weights` (one per column of
    // rows of weights.size() values) the weighted sums too.
    void add(std::span<const float> x, std::span<const float> y, std::span<const float> weights = {});
    void merge(const ErrorStats& o);
};

// Sees every piece of a round trip: the original values and what came back, the same
// length. Called from the executor's threads, several at once; the pieces cover the tensor
// exactly once, in no particular order.
using RoundTripObserver = std::function<void(std::span<const float> original, std::span<const float> result)>;

// Round-trips n_rows rows of n_per_row values held as `source_type` in `source` through
// `target`, a few rows at a time on up to `threads` threads (memory stays a few rows per
// thread); the figures do not depend on `threads`. importance: n_per_row weights, or
// empty. `progress`, when given, is called now and then on the calling thread with rows
// done of n_rows (see RunOptions::progress in executor.h); `observe` sees the values;
// setting `cancel` stops the work (quant::Cancelled). With importance, the figures include
// the importance-weighted error. Throws std::invalid_argument as quantize() does.
ErrorStats round_trip_error(TypeId source_type, std::span<const uint8_t> source, int64_t n_rows, int64_t n_per_row,
                            TypeId target, std::span<const float> importance, int threads,
                            const std::function<void(int64_t done, int64_t total)>& progress = {},
                            const RoundTripObserver& observe = {}, const std::atomic<bool>* cancel = nullptr);

// Two tensors of the same shape against each other (the same tensor in two files, each in
// its own type): the figures of a - b, signal a, over n_rows rows of n_per_row values, a few
// rows at a time as round_trip_error does (the same figures for any `threads`). `observe`
// sees (a values, b values). Throws std::invalid_argument when a or b is not n_rows rows.
ErrorStats compare_rows(TypeId type_a, std::span<const uint8_t> a, TypeId type_b, std::span<const uint8_t> b, int64_t n_rows,
                        int64_t n_per_row, int threads, const std::function<void(int64_t done, int64_t total)>& progress = {},
                        const RoundTripObserver& observe = {}, const std::atomic<bool>* cancel = nullptr);

// The same for a whole tensor of up to 4 dimensions (shape[0] is the row length): each
// matrix (shape[0] x shape[1]) in turn. `importance` holds shape[0] weights shared by all
// matrices, or shape[0] per matrix (expert tensors), or is empty. `progress` counts values
// of the whole tensor.
ErrorStats tensor_round_trip_error(TypeId source_type, std::span<const uint8_t> source, std::span<const uint64_t> shape,
                                   TypeId target, std::span<const float> importance, int threads,
                                   const std::function<void(int64_t done, int64_t total)>& progress = {},
                                   const RoundTripObserver& observe = {}, const std::atomic<bool>* cancel = nullptr);

}  // namespace kernels
