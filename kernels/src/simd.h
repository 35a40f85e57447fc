// Small helpers the family files share: field loads, f16 scales, fixed-order lane sums, the
// 7-bit sign groups of the grid i-quants. Only for family files compiled with a path's flags
// (AVX2 at least). Everything here is in an anonymous namespace: each file compiles its own
// copy with its own flags, as table.h's rule requires.
#pragma once

#include <immintrin.h>

#include <cstdint>
#include <cstring>

namespace kernels {
namespace {

inline uint16_t load_u16(const uint8_t* p) {
    uint16_t v;
    std::memcpy(&v, p, 2);
    return v;
}
inline uint32_t load_u32(const uint8_t* p) {
    uint32_t v;
    std::memcpy(&v, p, 4);
    return v;
}
inline uint64_t load_u64(const uint8_t* p) {
    uint64_t v;
    std::memcpy(&v, p, 8);
    return v;
}

// An f16 field as a float through F16C: exact, but a signalling NaN comes out quiet, which
// every product with it gives anyway (use half_to_float_bits where the value itself is stored).
inline float half_to_float(const uint8_t* p) { return _cvtsh_ss(load_u16(p)); }
// An f32 field.
inline float f32_field(const uint8_t* p) {
    float v;
    std::memcpy(&v, p, 4);
    return v;
}

// The bits quant::half_bits_to_float gives: F16C's, with a signalling NaN kept as it is.
inline uint32_t half_to_float_bits(uint16_t h) {
    const float f = _cvtsh_ss(h);
    uint32_t bits;
    std::memcpy(&bits, &f, 4);
    if ((h & 0x7c00) == 0x7c00 && (h & 0x03ff) != 0)
        bits = static_cast<uint32_t>(h & 0x8000) << 16 | 0x7f800000u | static_cast<uint32_t>(h & 0x03ff) << 13;
    return bits;
}

// The lanes summed in one fixed order: halves folded onto each other, down to one.
inline float hsum(__m256 v) {
    __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    s = _mm_add_ss(s, _mm_movehdup_ps(s));
    return _mm_cvtss_f32(s);
}
#if defined(__AVX512F__)
inline float hsum(__m512 v) { return hsum(_mm256_add_ps(_mm512_castps512_ps256(v), _mm512_extractf32x8_ps(v, 1))); }
#endif

// Four groups of 7 sign bits (bits 0-6, 7-13, 14-20, 21-27) to four sign bytes, each
// completed by even parity in its bit 7 (quant::signs_from7). Bit 0 of each byte of p ends
// up the parity of that byte: the shifts only ever bring in bits of the same byte.
inline uint32_t signs_from7x4(uint32_t bits28) {
    const uint32_t s = _pdep_u32(bits28, 0x7f7f7f7fu);
    uint32_t p = s ^ (s >> 4);
    p ^= p >> 2;
    p ^= p >> 1;
    return s | (p & 0x01010101u) << 7;
}

}  // namespace
}  // namespace kernels
