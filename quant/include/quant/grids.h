// The grid tables of the grid i-quants (IQ1_S, IQ1_M, IQ2_XXS, IQ2_XS, IQ2_S, IQ3_XXS,
// IQ3_S), part of the format: a block stores an index into one of these tables, and the
// entry packs the magnitudes (IQ2, IQ3: unsigned bytes) or signed values (IQ1: int8 -1, 0,
// +1) of 8 or 4 consecutive values, one per byte, lowest byte first.
//
// The decoders (quant/decode.h) take the tables as pointers, so a device passes its own
// copy: a CUDA kernel copies host_grids()'s tables (sizes below) to device memory once.
#pragma once

#include <cstdint>

namespace quant {

struct IqGrids {
    const uint64_t* iq2xxs;  // kIQ2XXSGridSize entries of 8 bytes
    const uint64_t* iq2xs;   // kIQ2XSGridSize
    const uint64_t* iq2s;    // kIQ2SGridSize
    const uint32_t* iq3xxs;  // kIQ3XXSGridSize entries of 4 bytes
    const uint32_t* iq3s;    // kIQ3SGridSize
    const uint64_t* iq1s;    // kIQ1SGridSize entries of 8 signed bytes
};

inline constexpr int kIQ2XXSGridSize = 256, kIQ2XSGridSize = 512, kIQ2SGridSize = 1024;
inline constexpr int kIQ3XXSGridSize = 256, kIQ3SGridSize = 512, kIQ1SGridSize = 2048;

// The tables in host memory.
const IqGrids& host_grids();

}  // namespace quant
