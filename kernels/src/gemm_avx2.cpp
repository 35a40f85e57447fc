// gemm, avx2 path: the packed f32 product (table.h, GemmPackedFn).
//
// 32 rows of a panel at a time are four ymm registers; columns go three at a time (12
// accumulators, 4 loads and 3 broadcasts per 12 FMAs), each column's sequence of FMAs the
// same as on every other path.
#include <immintrin.h>

#include <cstdint>

#include "gemm_simd.h"
#include "table.h"

namespace kernels::avx2 {

namespace {

static_assert(detail::kGemmRows % 32 == 0);

// Columns [from, from + Cols) of the group, rows [row, row + 32): 4 ymm registers a column.
template <int Cols> void product(const float* a, const float* x, int64_t k, float* c, int from, int64_t row, bool zero) {
    constexpr int64_t R = detail::kGemmRows, C = detail::kGemmCols;
    a += row, x += from, c += from * R + row;
    __m256 acc[Cols][4];
    for (int j = 0; j < Cols; ++j)
        for (int h = 0; h < 4; ++h) acc[j][h] = zero ? _mm256_setzero_ps() : _mm256_loadu_ps(c + j * R + h * 8);
    for (int64_t i = 0; i < k; ++i, a += R, x += C) {
        __m256 ar[4];
        for (int h = 0; h < 4; ++h) ar[h] = _mm256_loadu_ps(a + h * 8);
        for (int j = 0; j < Cols; ++j) {
            const __m256 b = _mm256_broadcast_ss(x + j);
            for (int h = 0; h < 4; ++h) acc[j][h] = _mm256_fmadd_ps(ar[h], b, acc[j][h]);
        }
    }
    for (int j = 0; j < Cols; ++j)
        for (int h = 0; h < 4; ++h) _mm256_storeu_ps(c + j * R + h * 8, acc[j][h]);
}

void gemm_packed(const float* a, const float* x, int64_t k, int cols, float* c, bool zero) {
    for (int64_t row = 0; row < detail::kGemmRows; row += 32) {
        int j = 0;
        for (; j + 3 <= cols; j += 3) product<3>(a, x, k, c, j, row, zero);
        if (cols - j == 2) product<2>(a, x, k, c, j, row, zero);
        if (cols - j == 1) product<1>(a, x, k, c, j, row, zero);
    }
}

}  // namespace

void add_gemm(detail::Table& t) {
    t.gemm_packed = gemm_packed;
    t.pack_panel = pack_panel;
    t.pack_panel_f16 = pack_panel_f16;
    t.pack_panel_bf16 = pack_panel_bf16;
}

}  // namespace kernels::avx2
