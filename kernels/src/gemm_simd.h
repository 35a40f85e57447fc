// The packed product's panel packing, shared by the avx2 and avx512 gemm files (compiled in
// each with its flags; anonymous namespace, see table.h).
#pragma once

#include <immintrin.h>

#include <cstdint>

#include "table.h"

namespace kernels {
namespace {

// 8 x 8 floats transposed in registers: v[i] holds row i on entry, column i on exit.
[[gnu::always_inline]] inline void transpose8(__m256 v[8]) {
    const __m256 t0 = _mm256_unpacklo_ps(v[0], v[1]), t1 = _mm256_unpackhi_ps(v[0], v[1]);
    const __m256 t2 = _mm256_unpacklo_ps(v[2], v[3]), t3 = _mm256_unpackhi_ps(v[2], v[3]);
    const __m256 t4 = _mm256_unpacklo_ps(v[4], v[5]), t5 = _mm256_unpackhi_ps(v[4], v[5]);
    const __m256 t6 = _mm256_unpacklo_ps(v[6], v[7]), t7 = _mm256_unpackhi_ps(v[6], v[7]);
    const __m256 s0 = _mm256_shuffle_ps(t0, t2, 0x44), s1 = _mm256_shuffle_ps(t0, t2, 0xee);
    const __m256 s2 = _mm256_shuffle_ps(t1, t3, 0x44), s3 = _mm256_shuffle_ps(t1, t3, 0xee);
    const __m256 s4 = _mm256_shuffle_ps(t4, t6, 0x44), s5 = _mm256_shuffle_ps(t4, t6, 0xee);
    const __m256 s6 = _mm256_shuffle_ps(t5, t7, 0x44), s7 = _mm256_shuffle_ps(t5, t7, 0xee);
    v[0] = _mm256_permute2f128_ps(s0, s4, 0x20);
    v[1] = _mm256_permute2f128_ps(s1, s5, 0x20);
    v[2] = _mm256_permute2f128_ps(s2, s6, 0x20);
    v[3] = _mm256_permute2f128_ps(s3, s7, 0x20);
    v[4] = _mm256_permute2f128_ps(s0, s4, 0x31);
    v[5] = _mm256_permute2f128_ps(s1, s5, 0x31);
    v[6] = _mm256_permute2f128_ps(s2, s6, 0x31);
    v[7] = _mm256_permute2f128_ps(s3, s7, 0x31);
}

// table.h's PackPanelFn and PackPanelHalfFn: 8 x 8 tiles of `count` rows (row r at rows +
// r x stride) loaded as floats by Load(pointer), transposed, stored k-major; rows count ...
// 31 zero; a tail of len below 8 value by value through Scalar(pointer).
// Eight rows at a time along the whole length: eight streams, each asked into L1 four cache
// lines ahead (the rows are usually the mapped weights, read from memory once a product;
// thirty-two streams across, as the panel is laid out, ran at half the speed).
template <class T, class Load, class Scalar>
void pack_rows(const T* rows, int64_t stride, int64_t len, int64_t count, float* panel, Load load, Scalar scalar) {
    constexpr int64_t R = detail::kGemmRows, kLine = 64 / sizeof(T), kAhead = 4 * kLine;
    const int64_t whole = len / 8 * 8;
    for (int64_t r0 = 0; r0 < R; r0 += 8)
        for (int64_t i = 0; i < whole; i += 8) {
            if (i % kLine == 0)
                for (int64_t r = 0; r < 8 && r0 + r < count; ++r) _mm_prefetch(reinterpret_cast<const char*>(rows + (r0 + r) * stride + i + kAhead), _MM_HINT_T0);
            __m256 v[8];
            for (int64_t r = 0; r < 8; ++r) v[r] = r0 + r < count ? load(rows + (r0 + r) * stride + i) : _mm256_setzero_ps();
            transpose8(v);
            for (int64_t c = 0; c < 8; ++c) _mm256_storeu_ps(panel + (i + c) * R + r0, v[c]);
        }
    for (int64_t i = whole; i < len; ++i)
        for (int64_t r = 0; r < R; ++r) panel[i * R + r] = r < count ? scalar(rows + r * stride + i) : 0.0f;
}

void pack_panel(const float* rows, int64_t stride, int64_t len, int64_t count, float* panel) {
    // The tail moves bits too (it may hold the 8-bit product's codes): a 4-byte copy.
    pack_rows(rows, stride, len, count, panel, [](const float* p) { return _mm256_loadu_ps(p); },
              [](const float* p) {
                  int bits;
                  __builtin_memcpy(&bits, p, 4);
                  return _mm_cvtss_f32(_mm_castsi128_ps(_mm_cvtsi32_si128(bits)));
              });
}

void pack_panel_f16(const uint16_t* rows, int64_t stride, int64_t len, int64_t count, float* panel) {
    pack_rows(
        rows, stride, len, count, panel, [](const uint16_t* p) { return _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p))); },
        [](const uint16_t* p) { return _mm_cvtss_f32(_mm_cvtph_ps(_mm_cvtsi32_si128(*p))); });
}

void pack_panel_bf16(const uint16_t* rows, int64_t stride, int64_t len, int64_t count, float* panel) {
    pack_rows(
        rows, stride, len, count, panel,
        [](const uint16_t* p) {
            return _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_cvtepu16_epi32(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p))), 16));
        },
        [](const uint16_t* p) { return _mm_cvtss_f32(_mm_castsi128_ps(_mm_cvtsi32_si128(static_cast<int>(uint32_t{*p} << 16)))); });
}

}  // namespace
}  // namespace kernels
