// gemm, avx512 path: y += A x for a panel of dequantized rows (the DequantizedPanel tile).
//
// Every output y[j][r] is one 16-lane accumulator over k (lane l sums a[r][i] x[j][i] for
// i = l mod 16, i ascending, FMA; a tail shorter than 16 is a masked load of zeros), then
// the same fixed tree of lane sums. The 4 x 4 register block and the 1 x 1 edge loop follow
// that order exactly, so a value never depends on where it falls in the blocking.
#include <immintrin.h>

#include <cstdint>

#include "simd.h"
#include "table.h"

namespace kernels::avx512 {

namespace {

__mmask16 tail_mask(int64_t k) { return static_cast<__mmask16>((1u << (k % 16)) - 1); }

float one(const float* a, const float* x, int64_t k) {
    __m512 acc = _mm512_setzero_ps();
    int64_t i = 0;
    for (; i + 16 <= k; i += 16) acc = _mm512_fmadd_ps(_mm512_loadu_ps(a + i), _mm512_loadu_ps(x + i), acc);
    if (i < k) {
        const __mmask16 m = tail_mask(k);
        acc = _mm512_fmadd_ps(_mm512_maskz_loadu_ps(m, a + i), _mm512_maskz_loadu_ps(m, x + i), acc);
    }
    return hsum(acc);
}

// 4 rows x 4 vectors: 16 accumulators, 8 loads per 16 FMAs.
void block4x4(const float* a, int64_t k, const float* x, float* y, int64_t y_stride) {
    __m512 acc[4][4];
    for (auto& row : acc)
        for (__m512& v : row) v = _mm512_setzero_ps();
    int64_t i = 0;
    auto step = [&](__mmask16 m) {
        __m512 ar[4], xc[4];
        for (int r = 0; r < 4; ++r) ar[r] = _mm512_maskz_loadu_ps(m, a + r * k + i);
        for (int c = 0; c < 4; ++c) xc[c] = _mm512_maskz_loadu_ps(m, x + c * k + i);
        for (int r = 0; r < 4; ++r)
            for (int c = 0; c < 4; ++c) acc[r][c] = _mm512_fmadd_ps(ar[r], xc[c], acc[r][c]);
    };
    for (; i + 16 <= k; i += 16) step(static_cast<__mmask16>(0xffff));
    if (i < k) step(tail_mask(k));
    for (int c = 0; c < 4; ++c)
        for (int r = 0; r < 4; ++r) y[c * y_stride + r] += hsum(acc[r][c]);
}

void gemm_f32(const float* a, int64_t rows, int64_t k, const float* x, int64_t n, float* y, int64_t y_stride) {
    panel_product<4, 4>(a, rows, k, x, n, y, y_stride, block4x4, one);
}

}  // namespace

void add_gemm(detail::Table& t) { t.gemm_f32 = gemm_f32; }

}  // namespace kernels::avx512
