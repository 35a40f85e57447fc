// gemm, avx2 path: y += A x for a panel of dequantized rows (the DequantizedPanel tile).
//
// Every output y[j][r] is one 8-lane accumulator over k (lane l sums a[r][i] x[j][i] for
// i = l mod 8, i ascending, FMA), the tail of k below 8 added in order after the lane sum.
// The 2 x 4 register block and the 1 x 1 edge loop follow that order exactly, so a value
// never depends on where it falls in the blocking.
#include <immintrin.h>

#include <cstdint>

#include "simd.h"
#include "table.h"

namespace kernels::avx2 {

namespace {

float tail(const float* a, const float* x, int64_t from, int64_t k, float sum) {
    for (int64_t i = from; i < k; ++i) sum = __builtin_fmaf(a[i], x[i], sum);
    return sum;
}

float one(const float* a, const float* x, int64_t k) {
    __m256 acc = _mm256_setzero_ps();
    int64_t i = 0;
    for (; i + 8 <= k; i += 8) acc = _mm256_fmadd_ps(_mm256_loadu_ps(a + i), _mm256_loadu_ps(x + i), acc);
    return tail(a, x, i, k, hsum(acc));
}

// 2 rows x 4 vectors: 8 accumulators, 6 loads per 8 FMAs.
void block2x4(const float* a, int64_t k, const float* x, float* y, int64_t y_stride) {
    __m256 acc[2][4];
    for (auto& row : acc)
        for (__m256& v : row) v = _mm256_setzero_ps();
    int64_t i = 0;
    for (; i + 8 <= k; i += 8) {
        const __m256 a0 = _mm256_loadu_ps(a + i), a1 = _mm256_loadu_ps(a + k + i);
        for (int c = 0; c < 4; ++c) {
            const __m256 xc = _mm256_loadu_ps(x + c * k + i);
            acc[0][c] = _mm256_fmadd_ps(a0, xc, acc[0][c]);
            acc[1][c] = _mm256_fmadd_ps(a1, xc, acc[1][c]);
        }
    }
    for (int c = 0; c < 4; ++c)
        for (int r = 0; r < 2; ++r) y[c * y_stride + r] += tail(a + r * k, x + c * k, i, k, hsum(acc[r][c]));
}

void gemm_f32(const float* a, int64_t rows, int64_t k, const float* x, int64_t n, float* y, int64_t y_stride) {
    panel_product<2, 4>(a, rows, k, x, n, y, y_stride, block2x4, one);
}

}  // namespace

void add_gemm(detail::Table& t) { t.gemm_f32 = gemm_f32; }

}  // namespace kernels::avx2
