// Elementwise functions of the forward pass, on the portable path (plain float arithmetic
// that the compiler vectorizes; no libm call per value): the same bits on every machine and
// instruction set.
#pragma once

#include <span>

namespace kernels {

// x[i] = e^x[i], within 1.03 ulp (src/exp.h): 0 below about -103.97, infinity above 88.72,
// NaN kept.
void exp_in_place(std::span<float> x);

// gate[i] = gate[i] / (1 + e^-gate[i]) x up[i]: SwiGLU's SiLU-gated product. Throws
// std::invalid_argument when the sizes differ.
void silu_mul(std::span<float> gate, std::span<const float> up);

}  // namespace kernels
