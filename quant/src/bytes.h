// Reading the little-endian fields of a block. Internal to quant/.
#pragma once

#include <cstdint>
#include <cstring>

#include "quant/decode.h"
#include "quant/quant.h"

namespace quant::detail {

// Stores v (exactly representable, or rounded to nearest even) in a block's f16 field.
inline void store_half(uint8_t (&h)[2], float v) {
    const uint16_t bits = f32_to_f16(v);
    h[0] = static_cast<uint8_t>(bits);
    h[1] = static_cast<uint8_t>(bits >> 8);
}

// A block layout's struct views bytes in place: every member is a byte or byte array, so
// any address is suitably aligned.
template <class Block> const Block* blocks(const uint8_t* p) { return reinterpret_cast<const Block*>(p); }
template <class Block> Block* blocks(uint8_t* p) { return reinterpret_cast<Block*>(p); }

// Mean square of a row: the scale of "large" for importance-weighted fits. Eight sums in a
// fixed order (the same bits on every ISA), not one chain of dependent additions, which had
// been 7% of Q2_0's time.
inline float mean_square(const float* x, int64_t n) {
    double s[8] = {};
    int64_t i = 0;
    for (; i + 8 <= n; i += 8)
        for (int l = 0; l < 8; ++l) s[l] += static_cast<double>(x[i + l]) * x[i + l];
    for (; i < n; ++i) s[0] += static_cast<double>(x[i]) * x[i];
    const double sum = ((s[0] + s[4]) + (s[2] + s[6])) + ((s[1] + s[5]) + (s[3] + s[7]));
    return n ? static_cast<float>(sum / static_cast<double>(n)) : 0.0f;
}

}  // namespace quant::detail
