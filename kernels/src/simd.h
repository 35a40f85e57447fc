// Small helpers the family files share: field loads, f16 scales, fixed-order lane sums, the
// 7-bit sign groups of the grid i-quants; f16 fields of 4 or 16 blocks, and the AVX-512
// steps of the 16-blocks-at-once dot products (exact small integers to floats, the merge of
// four groups' lanes). Only for family files compiled with a path's flags
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

// The 16 IQ4_NL / IQ4_XS levels (quant::iq4_level) as signed bytes.
constexpr int8_t kIq4Levels[16] = {-127, -104, -83, -65, -49, -35, -22, -10, 1, 13, 25, 38, 53, 69, 89, 113};

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


// ---- Shared by the legacy, microscaling and ternary files -------------------------------

// The f16 fields at p, p + Stride, p + 2 Stride and p + 3 Stride (one field of 4 blocks) in
// one u64, by scalar loads: where the vector units are the bottleneck.
template <int Stride> [[gnu::always_inline]] inline uint64_t f16_fields4(const uint8_t* p) {
    return uint64_t{load_u16(p)} | uint64_t{load_u16(p + Stride)} << 16 | uint64_t{load_u16(p + 2 * Stride)} << 32 |
           uint64_t{load_u16(p + 3 * Stride)} << 48;
}

// The same 4 fields as floats, gathered by vpinsrw (the activation scales of 4 blocks).
template <int Stride> inline __m128 f16_fields4_ps(const uint8_t* p) {
    __m128i h = _mm_cvtsi32_si128(load_u16(p));
    h = _mm_insert_epi16(h, load_u16(p + Stride), 1);
    h = _mm_insert_epi16(h, load_u16(p + 2 * Stride), 2);
    h = _mm_insert_epi16(h, load_u16(p + 3 * Stride), 3);
    return _mm_cvtph_ps(h);
}

#if defined(__AVX512F__)
// The f16 fields of 16 blocks Stride bytes apart as floats, lane b for block b.
template <int Stride> [[gnu::always_inline]] inline __m512 f16_fields16(const uint8_t* p) {
    return _mm512_cvtph_ps(_mm256_setr_epi64x(static_cast<int64_t>(f16_fields4<Stride>(p)), static_cast<int64_t>(f16_fields4<Stride>(p + 4 * Stride)),
                                              static_cast<int64_t>(f16_fields4<Stride>(p + 8 * Stride)),
                                              static_cast<int64_t>(f16_fields4<Stride>(p + 12 * Stride))));
}

// 32 bytes from lo, then 32 from hi (the codes of two 32-value blocks).
inline __m512i load_2x32(const void* lo, const void* hi) {
    return _mm512_inserti64x4(_mm512_castsi256_si512(_mm256_loadu_si256(static_cast<const __m256i*>(lo))),
                              _mm256_loadu_si256(static_cast<const __m256i*>(hi)), 1);
}

// Integers to floats, exact for |s| < 2^22: 1.5 x 2^23 + s has unit steps (cheaper than
// vcvtdq2ps where the conversion is the bottleneck).
[[gnu::always_inline]] inline __m512 small_to_float(__m512i s) {
    const __m512 magic = _mm512_set1_ps(12582912.0f);
    return _mm512_sub_ps(_mm512_castsi512_ps(_mm512_add_epi32(s, _mm512_castps_si512(magic))), magic);
}

// The sums of 16 blocks, one lane each, from 4 vectors of 4 blocks (vector g: lanes
// 4k..4k+3 of block 4g + k): pairs of lanes added twice, across vpermt2d.
[[gnu::always_inline]] inline __m512i merge16(__m512i s0, __m512i s1, __m512i s2, __m512i s3) {
    const __m512i a = _mm512_setr_epi32(0, 1, 4, 5, 8, 9, 12, 13, 16, 17, 20, 21, 24, 25, 28, 29), b = _mm512_add_epi32(a, _mm512_set1_epi32(2));
    const __m512i s01 = _mm512_add_epi32(_mm512_permutex2var_epi32(s0, a, s1), _mm512_permutex2var_epi32(s0, b, s1));  // lanes 2k, 2k + 1: block k
    const __m512i s23 = _mm512_add_epi32(_mm512_permutex2var_epi32(s2, a, s3), _mm512_permutex2var_epi32(s2, b, s3));
    const __m512i c = _mm512_setr_epi32(0, 2, 4, 6, 8, 10, 12, 14, 16, 18, 20, 22, 24, 26, 28, 30), d = _mm512_add_epi32(c, _mm512_set1_epi32(1));
    return _mm512_add_epi32(_mm512_permutex2var_epi32(s01, c, s23), _mm512_permutex2var_epi32(s01, d, s23));
}
#endif

}  // namespace
}  // namespace kernels
