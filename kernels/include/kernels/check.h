// Checking tensor data: non-finite floats, and quantized blocks whose scales are not finite
// numbers (the values every other field multiplies; with finite scales every value of a
// block is finite). The scan is branch-free over blocks (the scale fields' places come from
// quant/'s traits table), so it runs at the speed memory delivers the blocks; the first bad
// block is located only when the count is not zero.
#pragma once

#include <cstdint>
#include <span>
#include <string>

#include "gguf/types.h"

namespace kernels {

using gguf::TypeId;

struct DataCheck {
    uint64_t bad = 0;            // non-finite values (float types) or blocks with a bad scale
    int64_t first = -1;          // index of the first: a value for float types, a block otherwise
    std::string first_problem;   // what was wrong there, e.g. "NaN", "f16 d is Inf"
    bool per_block = false;      // whether `first` counts blocks

    void merge(const DataCheck& later);  // `later` covers data after this one's
};

// Checks `bytes` of type `type` (whole blocks). Integer types are always sound.
// Throws std::invalid_argument for a retired type or a size that is not whole blocks.
DataCheck check_data(TypeId type, std::span<const uint8_t> bytes);
// The same, the blocks split over up to `threads` threads.
DataCheck check_data(TypeId type, std::span<const uint8_t> bytes, int threads);

}  // namespace kernels
