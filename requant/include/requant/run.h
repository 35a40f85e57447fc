// gguf requant's engine: reads a model, converts each tensor as the plan says, row chunk by
// row chunk on several threads, and streams the result into a temporary file that is
// renamed into place only when complete.
#pragma once

#include <atomic>
#include <cstdint>
#include <filesystem>
#include <functional>
#include <optional>
#include <regex>
#include <string>
#include <vector>

#include "gguf/types.h"
#include "gguf/value.h"
#include "quant/quant.h"
#include "requant/plan.h"

namespace gguf::requant {

struct RunOptions {
    Options plan;
    std::optional<std::filesystem::path> imatrix;
    std::vector<std::regex> include_weights, exclude_weights;  // which tensors use the imatrix
    std::vector<std::pair<std::string, OwnedValue>> overrides; // --override-kv, in order
    bool allow_requantize = false;
    quant::Effort effort = quant::Effort::Default;  // how hard the quantizers search (--effort)
    quant::ScaleFit scale_fit = quant::ScaleFit::Default;  // --unbiased-scales, --least-squares-scales
    // A split input is written as a split set with the same parts (OUT minus ".gguf", then
    // "-NNNNN-of-MMMMM.gguf"), each part's tensors in the input's order, as llama.cpp's
    // --keep-split does. A single-file input is written as one file regardless.
    bool keep_split = false;
    int threads = 1;
    // The output written past the page cache where the file system allows it (--no-direct-io
    // turns it off): gguf::WriteOptions::direct_io.
    bool direct_io = true;
    const std::atomic<bool>* cancel = nullptr;  // set (by a signal handler) to stop; nothing is written
};

// Progress as tensors are written: tensor i of n (1-based), its name, bytes of input done
// of the total.
struct Progress {
    size_t index, count;
    std::string_view tensor;
    uint64_t done_bytes, total_bytes;
};

struct Report {
    uint64_t tensors = 0, converted = 0, fallbacks = 0;
    uint64_t bytes_in = 0, bytes_out = 0;  // tensor data
    uint64_t elements = 0;
    uint64_t effort_tensors = 0;  // tensors whose quantization RunOptions::effort changes
    std::vector<std::string> warnings;  // e.g. importance-matrix entries no tensor uses
    std::vector<std::filesystem::path> outputs;  // the files written (several with keep_split)
    double bits_per_weight_in() const { return average_bits_per_weight(bytes_in, elements); }
    double bits_per_weight_out() const { return average_bits_per_weight(bytes_out, elements); }
};

// The plan as --dry-run shows it, with every refusal llama.cpp would make (quantized input
// without allow_requantize, a type that needs an importance matrix without one, an imatrix
// entry of the wrong length) thrown as std::runtime_error naming the tensor.
struct Prepared {
    std::vector<TensorPlan> plan;
    Report report;
};
Prepared prepare(const Model& m, const RunOptions& o);

// Writes `out` (or the parts of a split set with keep_split; output_paths says which).
// Refuses out == in. On any failure or cancellation the temporary files are removed and
// nothing is left at `out` (nor any part written before the failure).
Report requantize(const std::filesystem::path& in, const std::filesystem::path& out, const RunOptions& o,
                   const std::function<void(const Progress&)>& progress = {});

}  // namespace gguf::requant
