// Floats-family code the AVX2 and AVX-512 paths share (floats_avx2.cpp, floats_avx512.cpp):
// scalar.cpp's activation scale, f16 scalar stores, the Q8_1 activations around a path's own
// maximum and codes, and the entries that only forward to a path's conversion or dot
// product. Included by those two files only; everything is in an anonymous namespace, so
// each compiles its own copy with its own flags (table.h's rule).
#pragma once

#include <immintrin.h>

#include <cstdint>
#include <cstring>

#include "quant/blocks.h"
#include "simd.h"
#include "table.h"

namespace kernels {
namespace {

constexpr int kNearest = _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC;

// scalar.cpp's activation_scale: d = amax / 127, inverse 1 / d (0 when d is 0).
inline float scale_of(float amax, float& inverse) {
    const float d = amax / 127.0f;
    inverse = d != 0 ? 1.0f / d : 0.0f;
    return d;
}

inline void store_half(uint8_t* dst, float v) {
    const auto h = static_cast<uint16_t>(_mm_cvtsi128_si32(_mm_cvtps_ph(_mm_set_ss(v), kNearest)));
    std::memcpy(dst, &h, 2);
}

// Sums of (code + 128) over each 8 bytes of 32 codes (4 qwords).
inline __m256i biased_sums(__m256i q) { return _mm256_sad_epu8(_mm256_xor_si256(q, _mm256_set1_epi8(-128)), _mm256_setzero_si256()); }

// Sum of 32 signed bytes: the byte sums of (q + 128), less 32 x 128.
inline int sum_codes32(__m256i q) {
    const __m256i s = biased_sums(q);
    const __m128i t = _mm_add_epi64(_mm256_castsi256_si128(s), _mm256_extracti128_si256(s, 1));
    return static_cast<int>(_mm_cvtsi128_si32(t) + _mm_extract_epi32(t, 2)) - 32 * 128;
}

// Q8_0 activations: Group blocks a step, a path's Scales(x, half, inverse) giving their f16
// scales and inverse scales at once (scalar.cpp's bits), the rest block by block; a path's
// max |x| and codes of 32 floats (with the inverse scale) do the rest.
template <int Group, void (*Scales)(const float*, uint16_t*, float*), float (*Amax32)(const float*), __m256i (*Codes32)(const float*, float)>
void quantize_q8_0(const float* x, uint8_t* dst, int64_t n) {
    auto* b = reinterpret_cast<quant::BlockQ8_0*>(dst);
    int64_t i = 0;
    for (; i + 32 * Group <= n; i += 32 * Group, b += Group, x += 32 * Group) {
        alignas(64) float inverse[Group];
        alignas(64) uint16_t half[Group];
        Scales(x, half, inverse);
        for (int k = 0; k < Group; ++k) {
            std::memcpy(b[k].d, half + k, 2);
            _mm256_storeu_si256(reinterpret_cast<__m256i*>(b[k].qs), Codes32(x + 32 * k, inverse[k]));
        }
    }
    for (; i < n; i += 32, ++b, x += 32) {
        float id;
        store_half(b->d, scale_of(Amax32(x), id));
        _mm256_storeu_si256(reinterpret_cast<__m256i*>(b->qs), Codes32(x, id));
    }
}

// Q8_1 activations, given a path's max |x| of 32 floats and its codes of 32 floats (with
// the inverse scale).
template <float (*Amax32)(const float*), __m256i (*Codes32)(const float*, float)> void quantize_q8_1(const float* x, uint8_t* dst, int64_t n) {
    auto* b = reinterpret_cast<quant::BlockQ8_1*>(dst);
    for (int64_t i = 0; i < n; i += 32, ++b, x += 32) {
        float id;
        const float d = scale_of(Amax32(x), id);
        const __m256i q = Codes32(x, id);
        _mm256_storeu_si256(reinterpret_cast<__m256i*>(b->qs), q);
        store_half(b->d, d);
        store_half(b->s, d * static_cast<float>(sum_codes32(q)));
    }
}

// Q8_K activations (256 values, d as f32, the sums of each 16 codes as i16), given a path's
// max |x| of 256 floats and its Block(x, inverse, b) that writes b's codes and sums.
template <float (*Amax256)(const float*), void (*Block)(const float*, float, quant::BlockQ8_K&)>
void quantize_q8_k(const float* x, uint8_t* dst, int64_t n) {
    auto* b = reinterpret_cast<quant::BlockQ8_K*>(dst);
    for (int64_t i = 0; i < n; i += 256, ++b, x += 256) {
        float id;
        const float d = scale_of(Amax256(x), id);
        std::memcpy(b->d, &d, 4);
        Block(x, id, *b);
    }
}

// F16 / BF16 activations: the path's conversion, written as bytes.
template <detail::ToHalfFn ToHalf> void half_activations(const float* x, uint8_t* y, int64_t n) { ToHalf(x, reinterpret_cast<uint16_t*>(y), n); }

// F32 weights with F32 activations: the path's dot_f32.
template <detail::DotF32Fn DotF32> float dot_f32_blocks(const uint8_t* w, const uint8_t* x, int64_t n) {
    return DotF32(reinterpret_cast<const float*>(w), reinterpret_cast<const float*>(x), n);
}

inline void dequantize_f32(const uint8_t* src, float* dst, int64_t n) { std::memcpy(dst, src, static_cast<size_t>(n) * 4); }

}  // namespace
}  // namespace kernels
