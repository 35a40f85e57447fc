// `gguf error`'s measurement: every tensor of a model re-quantized to one type and the error
// of the round trip (kernels/error_stats.h), with the tensors requant would not convert
// left out and why. The command and the Python package (ggufkit.error) both report it.
#pragma once

#include <functional>
#include <optional>
#include <regex>
#include <string>
#include <vector>

#include "gguf/model.h"
#include "kernels/error_stats.h"
#include "quant/imatrix.h"

namespace gguf::requant {

struct ErrorRow {
    const Model::Tensor* tensor;
    kernels::ErrorStats stats;
    bool weighted = false;  // the importance matrix had the tensor
};

struct ErrorSkip {
    std::string name;
    std::string reason;
};

struct ErrorReport {
    std::vector<ErrorRow> rows;
    std::vector<ErrorSkip> skipped;
    kernels::ErrorStats total;
};

// Tensor i of n about to be measured, and rows done of its total.
using ErrorProgress = std::function<void(size_t index, size_t count, const std::string& name, int64_t done, int64_t total)>;

// Measures the tensors of `model` (those `filter` matches, when given) quantized to `target`
// on `threads` threads, with importance weights from `imatrix` where it has the tensor.
// Throws gguf::Error naming the file and tensor when a tensor's values cannot be quantized.
ErrorReport measure_error(const Model& model, TypeId target, const quant::ImportanceMatrix* imatrix, const std::optional<std::regex>& filter,
                          int threads, const ErrorProgress& progress = {});

}  // namespace gguf::requant
