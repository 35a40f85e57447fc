// What the viewer computes over a tensor's memory-mapped data: its values (statistics,
// histogram, heat map), what quantizing it to another type does to it (the round trip's
// error), and how it differs from the same tensor in another file. Each runs on the
// process's executor a few rows at a time (memory: a few rows per thread, whatever the
// tensor's size), reports progress and stops when cancelled (quant::Cancelled).
#pragma once

#include <atomic>
#include <cstdint>
#include <optional>
#include <span>
#include <string>

#include "gguf/model.h"
#include "kernels/error_stats.h"
#include "viewer/stats.h"

namespace quant {
class ImportanceMatrix;
}

namespace viewer {

// Shared between a computation and whoever watches it (the window, a test).
struct Progress {
    std::atomic<int64_t> done{0};   // values processed
    std::atomic<int64_t> total{0};  // values to process (all passes together)
    std::atomic<bool> cancel{false};
    double fraction() const;        // done / total, 0 before the total is known
};

struct ValueOptions {
    size_t bins = 4096;          // the fine histogram; the window rebins it for display
    uint32_t heat_rows = 256;    // the heat map's cells at most (2-D and larger tensors:
    uint32_t heat_cols = 256;    // every ne[0] x ne[1] matrix stacked as rows)
    int threads = 0;             // 0: every core
};

struct ValueAnalysis {
    ValueStats stats;
    Histogram histogram;          // over [stats.min, stats.max]
    std::optional<HeatMap> heat;  // tensors of two or more dimensions
};

// Two passes over the dequantized values: statistics and heat map, then the histogram.
// Throws std::invalid_argument for a type that cannot be dequantized, naming the tensor.
ValueAnalysis analyze_values(const gguf::Model& model, const gguf::Model::Tensor& tensor, const ValueOptions& options,
                             Progress* progress = nullptr);

struct ErrorAnalysis {
    kernels::ErrorStats stats;    // RMSE, SNR, largest error
    Histogram histogram;          // of original - result, trimmed to its non-empty bins
    double bits_per_weight = 0;   // of the result's type (error); of the second file's tensor (comparison)
};

// The round trip to `target`: dequantize, quantize to target (with `importance`: ne[0]
// weights, or ne[0] per matrix for expert tensors, or empty), dequantize again; the
// histogram is of original - round trip. Throws std::invalid_argument when the target
// cannot be made from this tensor (a row that is not a whole number of its blocks, a type
// that needs importance weights without them, NaN in the data), naming the tensor.
ErrorAnalysis analyze_error(const gguf::Model& model, const gguf::Model::Tensor& tensor, gguf::TypeId target,
                            std::span<const float> importance, int threads = 0, Progress* progress = nullptr);

// Tensor a (e.g. from the F16 file) against tensor b (the same tensor of a quantized file):
// the histogram is of a - b. Throws std::invalid_argument when the shapes differ.
ErrorAnalysis compare_tensors(const gguf::Model& model_a, const gguf::Model::Tensor& a, const gguf::Model& model_b,
                              const gguf::Model::Tensor& b, int threads = 0, Progress* progress = nullptr);

// The importance weights an imatrix holds for a tensor, checked against its row length:
// ne[0] values, or ne[0] x ne[2] for an expert tensor. Empty when the matrix has no entry
// for it; throws std::invalid_argument when the entry's length does not fit the tensor.
std::span<const float> importance_for(const quant::ImportanceMatrix& imatrix, const gguf::Model::Tensor& tensor);

// One column's importance, for the importance plot's list of the most important columns.
struct ColumnImportance {
    uint64_t column = 0;  // index into the importance (expert * ne[0] + column for experts)
    float value = 0;
};
// The `top` largest values of `importance`, largest first (ties: lower index first).
std::vector<ColumnImportance> top_columns(std::span<const float> importance, size_t top);

}  // namespace viewer
