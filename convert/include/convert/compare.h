// Quantization methods compared on the same weights: an original (a dense Hugging Face folder
// or a GGUF file) against any number of quantized versions of it (GPTQ, AWQ, NF4, FP8,
// compressed-tensors folders; GGUF files), and against GGUF types applied to the original
// here (round to the type, with importance weights when an imatrix is given). Per tensor and
// in total: bits per weight as stored, RMSE, importance-weighted RMSE, SNR.
//
// Every version is read in GGUF's tensor names and row order (a Hugging Face folder through
// convert's plan: Q/K rows permuted, experts stacked), so a GGUF file compares with the
// folder it came from.
#pragma once

#include <cstdint>
#include <filesystem>
#include <functional>
#include <memory>
#include <optional>
#include <regex>
#include <string>
#include <vector>

#include "gguf/types.h"
#include "kernels/error_stats.h"
#include "quant/imatrix.h"

namespace convert {

// One model's weights, by GGUF tensor name.
class WeightSource {
public:
    virtual ~WeightSource() = default;
    // A Hugging Face folder (config.json and safetensors, quantized or not) or a GGUF file
    // (any part of a split set). Throws std::runtime_error naming the path.
    static std::unique_ptr<WeightSource> open(const std::filesystem::path& path);

    struct Tensor {
        std::string name;
        std::vector<uint64_t> shape;  // ne[0] first
        double bits_per_weight = 0;   // as stored
        std::string kind;             // "GPTQ 4-bit g128", "q4_K", "BF16"
        uint64_t rows() const;
    };
    const std::string& path() const { return path_; }
    const std::string& description() const { return description_; }  // "GPTQ 4-bit, groups of 128, ...", "GGUF, Q4_K - Medium"
    const std::vector<Tensor>& tensors() const { return tensors_; }
    const Tensor* find(const std::string& name) const;
    // What reading it noticed (a GPTQ v1 zero field that may have wrapped, ...).
    const std::vector<std::string>& warnings() const { return warnings_; }
    // Rows [begin, end) of a tensor as F32 (rows x shape[0] values). Thread-safe.
    virtual void rows(const Tensor& t, uint64_t begin, uint64_t end, float* out) const = 0;

protected:
    std::string path_, description_;
    std::vector<Tensor> tensors_;
    std::vector<std::string> warnings_;
};

// Figures of one method on a set of values: kernels' error sums (RMSE, importance-weighted
// RMSE, SNR...) and the bits the method stores them in.
struct MethodStats : kernels::ErrorStats {
    double bits = 0;
    double bits_per_weight() const { return values ? bits / static_cast<double>(values) : 0; }
    void merge(const MethodStats& o) {
        ErrorStats::merge(o);
        bits += o.bits;
    }
};

struct CompareOptions {
    std::vector<gguf::TypeId> types;                     // GGUF types applied to the original here
    const quant::ImportanceMatrix* imatrix = nullptr;   // column weights: weighted RMSE, and the simulated types' rounding
    std::optional<std::regex> tensors;                  // only these (names searched); default below
    int threads = 0;
    std::function<void(size_t done, size_t total)> progress;  // after each tensor
};

struct Comparison {
    struct Method {
        std::string name;  // the version's path, or the GGUF type's name
        std::string kind;  // its description
        bool simulated = false;
        MethodStats total;   // over the tensors it was measured on
        size_t tensors = 0;  // how many: fewer than Comparison::tensors where skipped
        std::vector<std::optional<MethodStats>> per_tensor;  // by Comparison::tensors; nothing where skipped
    };
    std::vector<std::string> tensors;  // compared, in the original's order
    std::vector<Method> methods;       // the versions in the order given, then the types
    // (tensor, "tensor / type" or "tensor / imatrix", why): a tensor left out, a type not
    // applied to it (rows not whole blocks, no importance for a type that needs it, values the
    // quantizer refuses), an imatrix entry that does not fit (compared without weights).
    std::vector<std::pair<std::string, std::string>> skipped;
    std::string selection;  // how the tensors were chosen
};

// The tensors compared: those --tensor selects, else the matrices every version stores in
// fewer than 16 bits per weight (what all the quantized versions quantized), else every
// matrix they all have. A version that lacks a tensor, or holds it in another shape, is an
// error naming both. Figures are summed in row order: the same for every thread count.
Comparison compare_methods(const WeightSource& original, const std::vector<const WeightSource*>& versions, const CompareOptions& options);

}  // namespace convert
