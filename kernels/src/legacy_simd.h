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

}  // namespace
}  // namespace kernels
