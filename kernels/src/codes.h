// Weights as integer codes for the 8-bit product (table.h, IntProductFn): value =
// scale_g x (u - zero) - offset_g, u the u8 code, per group g of `group` values. Internal to
// kernels/.
#pragma once

#include <cstdint>

#include "gguf/types.h"

namespace kernels::detail {

struct CodeFormat {
    int group = 0;         // values per scale (16 or 32); 0: the type has no code form here
    int zero = 0;          // subtracted from every code
    bool offsets = false;  // a per-group offset (the minimum of the affine types)
};
CodeFormat code_format(gguf::TypeId type);

// n_blocks blocks of `type` to their codes (one byte per value), scales (one per group) and,
// where the format has them, offsets.
void unpack_codes(gguf::TypeId type, const uint8_t* src, int64_t n_blocks, uint8_t* codes, float* scales, float* offsets);

}  // namespace kernels::detail
