// Legacy-quants constants the AVX2 and AVX-512 paths share (legacy_avx2.cpp,
// legacy_avx512.cpp). Included by those two files only; in an anonymous namespace, so each
// compiles its own copy with its own flags (table.h's rule).
#pragma once

#include <cstdint>

#include "quant/blocks.h"
#include "simd.h"

namespace kernels {
namespace {

constexpr int kQ8_0Bytes = sizeof(quant::BlockQ8_0), kQ8_1Bytes = sizeof(quant::BlockQ8_1);

// The 16 IQ4_NL levels (quant/decode.h iq4_level).
constexpr int8_t kIq4Levels[16] = {-127, -104, -83, -65, -49, -35, -22, -10, 1, 13, 25, 38, 53, 69, 89, 113};

}  // namespace
}  // namespace kernels
