// The reference quantization of activations (the scalar path), for the SIMD paths' tests
// and comments: every path writes these bytes exactly. Internal to kernels/.
//
// Q8_0 and Q8_1 (blocks of 32) and Q8_K (blocks of 256): d = max|x| / 127 (a float
// division), codes round_half_away(x x (1 / d)) (0 when d is 0). Q8_0 and Q8_1 store d
// rounded to f16 (to nearest even), Q8_1 also s = f16(d x sum of codes) with the f32 d;
// Q8_K stores d as f32 and the sums of each 16 codes as i16.
#pragma once

#include <cstdint>

namespace kernels::detail {

int32_t round_half_away(float v);  // std::round for |v| < 2^23, as an integer
// d = max|x| / 127 over n values; `inverse` = 1 / d, or 0 when d is 0.
float activation_scale(const float* x, int n, float& inverse);

void quantize_q8_0(const float* x, uint8_t* dst, int64_t n);
void quantize_q8_1(const float* x, uint8_t* dst, int64_t n);
void quantize_q8_k(const float* x, uint8_t* dst, int64_t n);

}  // namespace kernels::detail
