// Internal to kernels/cuda: every type seen as a sequence of parts of 16 or 32 values
// (quant/decode.h's parts for the quantized types, 32 values for F16, BF16 and F32), so the
// dequantizer and the products give each thread one part to decode into registers.
#pragma once

#include <cstdint>

#include "common.cuh"

namespace kernels::cuda::detail {

template <class Block> struct Format {
    static constexpr int kPart = quant::part_values<Block>;
    static constexpr int kPartsPerBlock = quant::parts_per_block<Block>;
    // Values [part x kPart, (part + 1) x kPart) of the tensor at `base` into v.
    __device__ static void part(const uint8_t* __restrict__ base, int64_t part, const quant::IqGrids& grids, float* v) {
        const auto block = static_cast<uint64_t>(part) / kPartsPerBlock;
        const auto within = static_cast<int>(static_cast<uint64_t>(part) % kPartsPerBlock);
        quant::decode_part_of(reinterpret_cast<const Block*>(base)[block], grids, within, v);
    }
};

template <> struct Format<F32Value> {
    static constexpr int kPart = 32, kPartsPerBlock = 1;
    __device__ static void part(const uint8_t* __restrict__ base, int64_t part, const quant::IqGrids&, float* v) {
        const float* x = reinterpret_cast<const float*>(base) + part * kPart;
        for (int j = 0; j < kPart; ++j) v[j] = x[j];
    }
};

template <> struct Format<F16Value> {
    static constexpr int kPart = 32, kPartsPerBlock = 1;
    __device__ static void part(const uint8_t* __restrict__ base, int64_t part, const quant::IqGrids&, float* v) {
        const uint16_t* h = reinterpret_cast<const uint16_t*>(base) + part * kPart;
        for (int j = 0; j < kPart; ++j) v[j] = quant::half_bits_to_float(h[j]);
    }
};

// bfloat16 is the top half of a float's bits (quant::bf16_to_f32).
__device__ inline float bf16_bits_to_float(uint16_t h) { return quant::bits_to_float(static_cast<uint32_t>(h) << 16); }

template <> struct Format<BF16Value> {
    static constexpr int kPart = 32, kPartsPerBlock = 1;
    __device__ static void part(const uint8_t* __restrict__ base, int64_t part, const quant::IqGrids&, float* v) {
        const uint16_t* h = reinterpret_cast<const uint16_t*>(base) + part * kPart;
        for (int j = 0; j < kPart; ++j) v[j] = bf16_bits_to_float(h[j]);
    }
};

template <class Block> inline constexpr bool is_float_type = Block::kType == TypeId::F32 || Block::kType == TypeId::F16 ||
                                                             Block::kType == TypeId::BF16;

// Bytes of one value of a float type.
inline int float_value_bytes(TypeId type) { return type == TypeId::F32 ? 4 : 2; }

}  // namespace kernels::cuda::detail
