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

template <int Cols> void product(const float* a, const float* x, int64_t k, float* c) {
    constexpr int64_t R = detail::kGemmRows, C = detail::kGemmCols;
    __m512 acc[Cols][kVectors];
    for (int j = 0; j < Cols; ++j)
        for (int v = 0; v < kVectors; ++v) acc[j][v] = _mm512_loadu_ps(c + j * R + v * 16);
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

using Product = void (*)(const float* a, const float* x, int64_t k, float* c);
constexpr Product kProducts[] = {product<1>, product<2>, product<3>, product<4>,  product<5>,  product<6>,
                                 product<7>, product<8>, product<9>, product<10>, product<11>, product<12>};
static_assert(detail::kGemmCols <= 12 && detail::kGemmRows % 16 == 0);

void gemm_packed(const float* a, const float* x, int64_t k, int cols, float* c) { kProducts[cols - 1](a, x, k, c); }

}  // namespace

void add_gemm(detail::Table& t) {
    t.gemm_packed = gemm_packed;
    t.pack_panel = pack_panel;
}

}  // namespace kernels::avx512
