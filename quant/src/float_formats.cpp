// Float and integer tensors: F32, F16, BF16, F64, I8, I16, I32, I64 (a block is one value).
#include <bit>
#include <cmath>
#include <cstring>

#include "bytes.h"
#include "family.h"

namespace quant {

namespace {

// Integer selects only, so that loops over it vectorize: the normal case moves the exponent
// and mantissa into place and rebiases (127 - 15); Inf and NaN (exponent 31) rebias once
// more to reach 255; zero and subnormals are the mantissa x 2^-24, exact in a float.
inline float half_to_float(uint32_t h) {
    const uint32_t magnitude = h & 0x7fff;
    const uint32_t normal = (magnitude << 13) + (uint32_t{127 - 15} << 23);
    const uint32_t special = magnitude >= 0x7c00 ? uint32_t{128 - 16} << 23 : 0;
    const uint32_t subnormal = std::bit_cast<uint32_t>(static_cast<float>(static_cast<int32_t>(magnitude)) * 0x1p-24f);
    const uint32_t is_subnormal = magnitude < 0x400 ? ~uint32_t{0} : 0;
    const uint32_t bits = (subnormal & is_subnormal) | ((normal + special) & ~is_subnormal);
    return std::bit_cast<float>(bits | (h & 0x8000) << 16);
}

}  // namespace

float f16_to_f32(uint16_t h) { return half_to_float(h); }

float bf16_to_f32(uint16_t h) { return std::bit_cast<float>(static_cast<uint32_t>(h) << 16); }

uint16_t f32_to_f16(float f) {
    uint32_t x = std::bit_cast<uint32_t>(f);
    const uint32_t sign = (x >> 16) & 0x8000;
    x &= 0x7fffffff;
    if (x > 0x7f800000) return static_cast<uint16_t>(sign | 0x7e00 | ((x >> 13) & 0x3ff));  // NaN stays NaN
    if (x >= 0x477ff000) return static_cast<uint16_t>(sign | 0x7c00);  // rounds past 65504: infinity
    if (x < 0x38800000) {  // below the smallest normal half: a subnormal or zero
        const float scaled = std::bit_cast<float>(x) * 0x1p24f;  // exact; units of 2^-24
        return static_cast<uint16_t>(sign | static_cast<uint32_t>(std::nearbyint(scaled)));
    }
    uint32_t h = ((x >> 23) - 112) << 10 | ((x >> 13) & 0x3ff);
    const uint32_t rest = x & 0x1fff;
    if (rest > 0x1000 || (rest == 0x1000 && (h & 1))) ++h;  // to nearest even; a carry may reach the exponent
    return static_cast<uint16_t>(sign | h);
}

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
        dst[i] = half_to_float(h);
    }
}

void dequantize_bf16(const uint8_t* src, float* dst, int64_t n) {
    for (int64_t i = 0; i < n; ++i) dst[i] = bf16_to_f32(u16le(src + 2 * i));
}

template <uint16_t (*convert_one)(float)>
void quantize_16bit(const float* x, uint8_t* dst, int64_t n, const float*) {
    for (int64_t i = 0; i < n; ++i) {
        const uint16_t h = convert_one(x[i]);
        dst[2 * i] = static_cast<uint8_t>(h);
        dst[2 * i + 1] = static_cast<uint8_t>(h >> 8);
    }
}

void quantize_f32(const float* x, uint8_t* dst, int64_t n, const float*) { std::memcpy(dst, x, static_cast<size_t>(n) * 4); }

}  // namespace

void register_float_formats(TraitsTable& t) {
    set_type(t, TypeId::F32, convert<float>, quantize_f32);
    set_type(t, TypeId::F16, dequantize_f16, quantize_16bit<f32_to_f16>);
    set_type(t, TypeId::BF16, dequantize_bf16, quantize_16bit<f32_to_bf16>);
    set_type(t, TypeId::F64, convert<double>, nullptr);
    set_type(t, TypeId::I8, convert<int8_t>, nullptr);
    set_type(t, TypeId::I16, convert<int16_t>, nullptr);
    set_type(t, TypeId::I32, convert<int32_t>, nullptr);
    set_type(t, TypeId::I64, convert<int64_t>, nullptr);
}

}  // namespace detail
}  // namespace quant
