// Ternary-family code the AVX2 and AVX-512 paths share (ternary_avx2.cpp, ternary_avx512.cpp):
// TQ1_0's digit arithmetic on bytes and its qh digits, the scale of a block against Q8_K
// activations. Included by those two files only; everything is in an anonymous namespace,
// so each compiles its own copy with its own flags (table.h's rule).
#pragma once

#include <immintrin.h>

#include <cstdint>

#include "quant/blocks.h"
#include "simd.h"

namespace kernels {
namespace {

// Byte-wise x 3 (mod 256).
inline __m256i times3(__m256i q) { return _mm256_add_epi8(q, _mm256_add_epi8(q, q)); }

// TQ1_0's 4 qh bytes repeated 4 times, repeat k multiplied by 3^k (mod 256), so that the
// top digit of byte 4k + m is digit k of qh byte m: 16-bit multiplies of the even and odd
// bytes apart.
inline __m128i tq1_qh_powers(uint32_t qh) {
    const __m128i h = _mm_set1_epi32(static_cast<int>(qh));
    const __m128i pow3 = _mm_setr_epi16(1, 1, 3, 3, 9, 9, 27, 27);
    const __m128i even = _mm_and_si128(_mm_mullo_epi16(h, pow3), _mm_set1_epi16(0x00ff));
    const __m128i odd = _mm_mullo_epi16(_mm_and_si128(h, _mm_set1_epi16(static_cast<short>(0xff00))), pow3);
    return _mm_or_si128(even, odd);
}

// A TQ1_0 / TQ2_0 block's scale times its Q8_K activation block's.
template <class Block> float q8_k_scale(const Block& b, const quant::BlockQ8_K& a) { return half_to_float(b.d) * f32_field(a.d); }

// Float lanes added, 8 or 16.
inline __m256 add_lanes(__m256 a, __m256 b) { return _mm256_add_ps(a, b); }
#if defined(__AVX512F__)
inline __m512 add_lanes(__m512 a, __m512 b) { return _mm512_add_ps(a, b); }
#endif

// The TQ1_0 dot product around a path's Block(b, a, acc) (acc plus block b's products with
// activation block a, in float lanes): blocks alternate between two accumulators, added and
// their lanes summed in a fixed order at the end.
template <class Vec, Vec (*Block)(const quant::BlockTQ1_0&, const quant::BlockQ8_K&, Vec)>
float dot_tq1_0(const uint8_t* w, const uint8_t* x, int64_t n_blocks) {
    const auto* b = reinterpret_cast<const quant::BlockTQ1_0*>(w);
    const auto* a = reinterpret_cast<const quant::BlockQ8_K*>(x);
    Vec acc[2] = {};
    int64_t i = 0;
    for (; i + 2 <= n_blocks; i += 2, b += 2, a += 2) {
        acc[0] = Block(b[0], a[0], acc[0]);
        acc[1] = Block(b[1], a[1], acc[1]);
    }
    if (i < n_blocks) acc[0] = Block(*b, *a, acc[0]);
    return hsum(add_lanes(acc[0], acc[1]));
}

}  // namespace
}  // namespace kernels
