// Reading the little-endian fields of a block. Internal to quant/.
#pragma once

#include <cstdint>
#include <cstring>

#include "quant/quant.h"

namespace quant::detail {

inline uint16_t u16le(const uint8_t* p) { return static_cast<uint16_t>(p[0] | (p[1] << 8)); }
inline uint32_t u32le(const uint8_t* p) {
    return static_cast<uint32_t>(p[0]) | static_cast<uint32_t>(p[1]) << 8 | static_cast<uint32_t>(p[2]) << 16 |
           static_cast<uint32_t>(p[3]) << 24;
}
// A block's f16 scale field (two bytes, little-endian) as a float.
inline float half(const uint8_t (&h)[2]) { return f16_to_f32(u16le(h)); }

// A block layout's struct views bytes in place: every member is a byte or byte array, so
// any address is suitably aligned.
template <class Block> const Block* blocks(const uint8_t* p) { return reinterpret_cast<const Block*>(p); }

}  // namespace quant::detail
