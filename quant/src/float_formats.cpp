// Float and integer tensors: F32, F16, BF16, F64, I8, I16, I32, I64 (a block is one value).
#include <bit>
#include <cmath>
#include <cstring>

#include "bytes.h"
#include "family.h"

namespace quant {

float f16_to_f32(uint16_t h) { return half_bits_to_float(h); }

float bf16_to_f32(uint16_t h) { return std::bit_cast<float>(static_cast<uint32_t>(h) << 16); }

// The rounding is quant/decode.h's, which CUDA kernels share.
uint16_t f32_to_f16(float f) { return float_to_half_bits(f); }

uint16_t f32_to_bf16(float f) {
    const uint32_t x = std::bit_cast<uint32_t>(f);
    if ((x & 0x7fffffff) > 0x7f800000) return static_cast<uint16_t>((x >> 16) | 0x40);  // quiet NaN
    return static_cast<uint16_t>((x + 0x7fff + ((x >> 16) & 1)) >> 16);
}

namespace detail {
namespace {

template <class T> void convert(const uint8_t* src, float* dst, int64_t n) {
    for (int64_t i = 0; i < n; ++i) {
        T v;
        std::memcpy(&v, src + i * sizeof(T), sizeof(T));  // stored little-endian, as the host
        dst[i] = static_cast<float>(v);
    }
}

void dequantize_f16(const uint8_t* src, float* dst, int64_t n) {
    for (int64_t i = 0; i < n; ++i) {
        uint16_t h;
        std::memcpy(&h, src + 2 * i, 2);  // stored little-endian, as the host
        dst[i] = half_bits_to_float(h);
    }
}

void dequantize_bf16(const uint8_t* src, float* dst, int64_t n) {
    for (int64_t i = 0; i < n; ++i) dst[i] = bf16_to_f32(u16le(src + 2 * i));
}

template <uint16_t (*convert_one)(float)>
void quantize_16bit(const float* x, uint8_t* dst, int64_t n, const float*) {
    for (int64_t i = 0; i < n; ++i) {
        const uint16_t h = convert_one(x[i]);
        std::memcpy(dst + 2 * i, &h, 2);  // little-endian, as the host
    }
}

void quantize_f32(const float* x, uint8_t* dst, int64_t n, const float*) { std::memcpy(dst, x, static_cast<size_t>(n) * 4); }

}  // namespace

void register_float_formats(TraitsTable& t) {
    set_type(t, TypeId::F32, convert<float>, quantize_f32);
    set_type(t, TypeId::F16, dequantize_f16, quantize_16bit<float_to_half_bits>);
    set_type(t, TypeId::BF16, dequantize_bf16, quantize_16bit<f32_to_bf16>);
    set_type(t, TypeId::F64, convert<double>, nullptr);
    set_type(t, TypeId::I8, convert<int8_t>, nullptr);
    set_type(t, TypeId::I16, convert<int16_t>, nullptr);
    set_type(t, TypeId::I32, convert<int32_t>, nullptr);
    set_type(t, TypeId::I64, convert<int64_t>, nullptr);
}

}  // namespace detail
}  // namespace quant
