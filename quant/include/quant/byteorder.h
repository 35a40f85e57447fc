// Tensor data in the other byte order, for files written big-endian (as gguf-py's
// gguf_convert_endian converts them): every multi-byte field of every block swapped, the
// bytes that are bytes (codes, packed scales) left alone.
#pragma once

#include <cstdint>
#include <span>

#include "gguf/types.h"

namespace quant {

// Whether the fields of a `type` block are known here: the plain numbers (F32, F16, BF16,
// F64, I8-I64), the legacy and K-quant formats, Q8_0, TQ1_0/TQ2_0, MXFP4, NVFP4. The i-quants
// (16-bit code words, grids) are not.
bool can_swap_byte_order(gguf::TypeId type);

// Swaps in place the multi-byte fields of every block in `data` (a whole number of blocks).
// Throws std::invalid_argument for a type can_swap_byte_order() refuses or a partial block.
void swap_byte_order(gguf::TypeId type, std::span<uint8_t> data);

}  // namespace quant
