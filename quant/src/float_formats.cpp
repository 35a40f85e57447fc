// Float and integer tensors: F32, F16, BF16, F64, I8, I16, I32, I64 (a block is one value).
#include <bit>
#include <cstring>

#include "bytes.h"
#include "family.h"

namespace quant {

float f16_to_f32(uint16_t h) {
    const uint32_t sign = static_cast<uint32_t>(h & 0x8000) << 16;
    const uint32_t exponent = (h >> 10) & 0x1f;
    const uint32_t mantissa = h & 0x3ff;
    if (exponent == 0x1f) return std::bit_cast<float>(sign | 0x7f800000u | (mantissa << 13));  // Inf, NaN
    if (exponent != 0) return std::bit_cast<float>(sign | ((exponent + 127 - 15) << 23) | (mantissa << 13));
    // Zero or subnormal: mantissa x 2^-24, exact in a float.
    const float magnitude = static_cast<float>(mantissa) * 0x1p-24f;
    return sign ? -magnitude : magnitude;
}

float bf16_to_f32(uint16_t h) { return std::bit_cast<float>(static_cast<uint32_t>(h) << 16); }

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
    for (int64_t i = 0; i < n; ++i) dst[i] = f16_to_f32(u16le(src + 2 * i));
}

void dequantize_bf16(const uint8_t* src, float* dst, int64_t n) {
    for (int64_t i = 0; i < n; ++i) dst[i] = bf16_to_f32(u16le(src + 2 * i));
}

}  // namespace

void register_float_formats(TraitsTable& t) {
    t[static_cast<uint32_t>(TypeId::F32)].dequantize = convert<float>;
    t[static_cast<uint32_t>(TypeId::F16)].dequantize = dequantize_f16;
    t[static_cast<uint32_t>(TypeId::BF16)].dequantize = dequantize_bf16;
    t[static_cast<uint32_t>(TypeId::F64)].dequantize = convert<double>;
    t[static_cast<uint32_t>(TypeId::I8)].dequantize = convert<int8_t>;
    t[static_cast<uint32_t>(TypeId::I16)].dequantize = convert<int16_t>;
    t[static_cast<uint32_t>(TypeId::I32)].dequantize = convert<int32_t>;
    t[static_cast<uint32_t>(TypeId::I64)].dequantize = convert<int64_t>;
}

}  // namespace detail
}  // namespace quant
