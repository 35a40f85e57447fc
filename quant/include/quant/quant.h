// The numbers inside GGUF tensors: how the bytes of each tensor type turn into floats.
//
// This is the reference that faster kernels are tested against: plain, exact code that
// rounds the way ggml does, bit for bit. Every type is reached through one table indexed
// by type id (traits()); nothing outside quant/ switches on a type.
//
// Rows are independent: a tensor of type T and row length n is n_rows consecutive rows of
// row_bytes(T, n) bytes each, so callers may split any range of rows across threads.
#pragma once

#include <cstdint>
#include <span>

#include "gguf/types.h"

namespace quant {

using gguf::TypeId;

// Converts `n_blocks` consecutive blocks at `src` into n_blocks x block_size floats.
using DequantizeFn = void (*)(const uint8_t* src, float* dst, int64_t n_blocks);

struct Traits {
    TypeId type;
    DequantizeFn dequantize;  // nullptr where not (yet) implemented
};

// The entry for `type`, or nullptr for ids beyond the table and retired ids.
const Traits* traits(TypeId type);

bool can_dequantize(TypeId type);

// Bytes of one row of `n` values; throws std::invalid_argument when n is not a multiple of
// the type's block size or the type is retired.
uint64_t row_bytes(TypeId type, int64_t n);

// Converts whole rows: src holds exactly dst.size() values of `type`. Throws
// std::invalid_argument when the sizes disagree or the type cannot be dequantized.
void dequantize(TypeId type, std::span<const uint8_t> src, std::span<float> dst);

// IEEE half and bfloat16 to float: exact (every such value is a float).
float f16_to_f32(uint16_t h);
float bf16_to_f32(uint16_t h);

}  // namespace quant
