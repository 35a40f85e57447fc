// gemm, avx512 path: the packed f32 product (table.h, GemmPackedFn).
//
// The 32 rows of a panel are two zmm registers; each of up to 12 columns keeps two
// accumulators, so a step over k is 2 loads, `cols` broadcasts and 2 x cols FMAs (24
// accumulators at full width: the FMA unit, not the loads, is the limit).
#include <immintrin.h>

#include <cstdint>

#include "gemm_simd.h"
#include "table.h"

namespace kernels::avx512 {

namespace {

constexpr int kVectors = static_cast<int>(detail::kGemmRows / 16);  // zmm registers per column

template <int Cols> void product(const float* a, const float* x, int64_t k, float* c, bool zero) {
    constexpr int64_t R = detail::kGemmRows, C = detail::kGemmCols;
    __m512 acc[Cols][kVectors];
    for (int j = 0; j < Cols; ++j)
        for (int v = 0; v < kVectors; ++v) acc[j][v] = zero ? _mm512_setzero_ps() : _mm512_loadu_ps(c + j * R + v * 16);
    for (int64_t i = 0; i < k; ++i, a += R, x += C) {
        __m512 av[kVectors];
        for (int v = 0; v < kVectors; ++v) av[v] = _mm512_loadu_ps(a + v * 16);
        for (int j = 0; j < Cols; ++j) {
            const __m512 b = _mm512_set1_ps(x[j]);
            for (int v = 0; v < kVectors; ++v) acc[j][v] = _mm512_fmadd_ps(av[v], b, acc[j][v]);
        }
    }
    for (int j = 0; j < Cols; ++j)
        for (int v = 0; v < kVectors; ++v) _mm512_storeu_ps(c + j * R + v * 16, acc[j][v]);
}

using Product = void (*)(const float* a, const float* x, int64_t k, float* c, bool zero);
constexpr Product kProducts[] = {product<1>, product<2>, product<3>, product<4>,  product<5>,  product<6>,
                                 product<7>, product<8>, product<9>, product<10>, product<11>, product<12>};
static_assert(detail::kGemmCols <= 12 && detail::kGemmRows % 16 == 0);

void gemm_packed(const float* a, const float* x, int64_t k, int cols, float* c, bool zero) { kProducts[cols - 1](a, x, k, c, zero); }

// The 8-bit product: 32 rows (two vectors of int32 lanes) by up to 6 columns; per group, 12
// integer accumulators start from xz and take vpdpbusd over the group's quads, then turn
// into 12 float accumulators.
template <int Cols, bool Offsets>
void int_columns(const uint8_t* w, const float* ws, const float* wo, const int8_t* x, const float* xd, const int32_t* xz, const float* xs,
                 int64_t groups, int quads, float* c) {
    constexpr int64_t R = detail::kIntRows, C = detail::kIntCols;
    __m512 f[Cols][2];
    for (int j = 0; j < Cols; ++j) {
        f[j][0] = _mm512_loadu_ps(c + j * R);
        f[j][1] = _mm512_loadu_ps(c + j * R + 16);
    }
    for (int64_t g = 0; g < groups; ++g) {
        __m512i s[Cols][2];
        for (int j = 0; j < Cols; ++j) s[j][0] = s[j][1] = _mm512_set1_epi32(xz[g * C + j]);
        for (int q = 0; q < quads; ++q, w += 4 * R, x += 4 * C) {
            const __m512i w0 = _mm512_loadu_si512(w), w1 = _mm512_loadu_si512(w + 64);
            for (int j = 0; j < Cols; ++j) {
                int32_t word;
                __builtin_memcpy(&word, x + 4 * j, 4);
                const __m512i xb = _mm512_set1_epi32(word);
                s[j][0] = _mm512_dpbusd_epi32(s[j][0], w0, xb);
                s[j][1] = _mm512_dpbusd_epi32(s[j][1], w1, xb);
            }
        }
        const __m512 sc0 = _mm512_loadu_ps(ws + g * R), sc1 = _mm512_loadu_ps(ws + g * R + 16);
        for (int j = 0; j < Cols; ++j) {
            const __m512 d = _mm512_set1_ps(xd[g * C + j]);
            f[j][0] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(s[j][0]), _mm512_mul_ps(sc0, d), f[j][0]);
            f[j][1] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(s[j][1]), _mm512_mul_ps(sc1, d), f[j][1]);
        }
        if constexpr (Offsets) {
            const __m512 o0 = _mm512_loadu_ps(wo + g * R), o1 = _mm512_loadu_ps(wo + g * R + 16);
            for (int j = 0; j < Cols; ++j) {
                const __m512 v = _mm512_set1_ps(xs[g * C + j]);
                f[j][0] = _mm512_fnmadd_ps(o0, v, f[j][0]);
                f[j][1] = _mm512_fnmadd_ps(o1, v, f[j][1]);
            }
        }
    }
    for (int j = 0; j < Cols; ++j) {
        _mm512_storeu_ps(c + j * R, f[j][0]);
        _mm512_storeu_ps(c + j * R + 16, f[j][1]);
    }
}

using IntColumns = void (*)(const uint8_t*, const float*, const float*, const int8_t*, const float*, const int32_t*, const float*, int64_t, int,
                            float*);
constexpr IntColumns kIntColumns[2][6] = {
    {int_columns<1, false>, int_columns<2, false>, int_columns<3, false>, int_columns<4, false>, int_columns<5, false>, int_columns<6, false>},
    {int_columns<1, true>, int_columns<2, true>, int_columns<3, true>, int_columns<4, true>, int_columns<5, true>, int_columns<6, true>}};
static_assert(detail::kIntRows == 32 && detail::kIntCols == 6);

void int_product(const uint8_t* codes, const float* scales, const float* offsets, const int8_t* x, const float* xd, const int32_t* xz,
                 const float* xs, int64_t groups, int quads, int cols, float* c) {
    kIntColumns[offsets != nullptr][cols - 1](codes, scales, offsets, x, xd, xz, xs, groups, quads, c);
}

}  // namespace

void add_gemm(detail::Table& t) {
    t.gemm_packed = gemm_packed;
    t.pack_panel = pack_panel;
    t.pack_panel_f16 = pack_panel_f16;
    t.pack_panel_bf16 = pack_panel_bf16;
    t.int_product = int_product;
}

}  // namespace kernels::avx512
