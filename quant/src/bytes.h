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

// Mean square of a row: the scale of "large" for importance-weighted fits.
inline float mean_square(const float* x, int64_t n) {
    double s = 0;
    for (int64_t i = 0; i < n; ++i) s += static_cast<double>(x[i]) * x[i];
    return n ? static_cast<float>(s / static_cast<double>(n)) : 0.0f;
}

}  // namespace quant::detail
