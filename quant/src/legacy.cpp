// The legacy block formats: 32 values per block, one f16 scale (and for the _1 kinds an f16
// minimum), 4, 5 or 8 bits per value.
#include <algorithm>
#include <cmath>
#include <limits>
#include <type_traits>

#include "bytes.h"
#include "family.h"
#include "fit.h"

namespace quant::detail {

namespace {

// Each quantizer fits every block of 32 on its own (fit.h), with weights from the
// importance of its columns when given.

// Packs 32 codes (already offset to be non-negative) as Q4_0-style nibbles, and for 5-bit
// codes their fifth bits into qh.
void pack_nibbles(const int* c, uint8_t (&qs)[16], uint8_t (*qh)[4]) {
    uint32_t high = 0;
    for (int j = 0; j < 16; ++j) {
        qs[j] = static_cast<uint8_t>((c[j] & 0x0f) | (c[j + 16] & 0x0f) << 4);
        high |= static_cast<uint32_t>((c[j] >> 4) & 1) << j | static_cast<uint32_t>((c[j + 16] >> 4) & 1) << (j + 16);
    }
    if (qh)
        for (int k = 0; k < 4; ++k) (*qh)[k] = static_cast<uint8_t>(high >> (8 * k));
}

// The searches by effort (Effort): fast tries only the scales that send the largest value to
// an end of the code range (ggml's reference rounding takes the one for the negative end) with
// the nearest codes for each as stored; default and best refit by least squares around them.
// Q4_0's default without an importance matrix refits once from each start (kDefaultQ4_0;
// with one, twice: quantize_q4_0). Measured when it first did so everywhere (2026-12-04),
// against two refits: 0.8 of the fit's time (3.4 against 4.2 ns a value on one thread), the
// rmse.tsv rows within 0.4% (RMSE without importance 0.951 -> 0.953 of ggml's,
// importance-weighted with it 1.001 -> 1.005, with the square-root weights of then), the
// mean KL divergence of the tiny model's Q4_0 mix 0.982 -> 0.969 of llama.cpp's file and the
// trained model's 0.977 -> 0.979; the Q4_0 mix is the one whose time llama-quantize's single
// rounding comes closest to.
constexpr Search kFastSearch{0, 0}, kDefaultLegacy{1, 2}, kBestLegacy{2, 3}, kDefaultQ4_0{1, 1};

// Packs a symmetric block: its scale and codes q in [kLo, kHi] (Q8_0 keeps them as they are).
template <int kLo, class Block>
void pack_symmetric(float d, const int8_t* q, Block& b) {
    store_half(b.d, d);
    if constexpr (std::is_same_v<Block, BlockQ8_0>) {
        std::copy(q, q + 32, b.qs);
    } else {
        int c[32];
        for (int j = 0; j < 32; ++j) c[j] = q[j] - kLo;
        if constexpr (requires { b.qh; }) pack_nibbles(c, b.qs, &b.qh);
        else pack_nibbles(c, b.qs, nullptr);
    }
}

// The symmetric kinds fit sixteen blocks at a time (fit_symmetric16: the bits of one block at
// a time), weighted as quantize_blocks weights them, or by 1 (`kWeighted` false: the fast
// effort without an importance matrix). A row's last blocks short of sixteen fill the idle
// lanes with copies of its first block of the group.
template <int kLo, int kHi, class Block, Search kSearch, bool kWeighted = true>
void quantize_symmetric(const float* x, uint8_t* dst, int64_t n, const float* importance) {
    Block* b = blocks<Block>(dst);
    for_each_group16(x, n, importance, kWeighted, [&](const float* xs, const float* w, int g) {
        float d[16];
        int8_t q[16 * 32];
        fit_symmetric16(xs, w, 32, kLo, kHi, q, true, kSearch, d);
        for (int k = 0; k < g; ++k) pack_symmetric<kLo>(d[k], q + 32 * k, *b++);
    });
}

template <int kHi, class Block, Search kSearch = Search{}>
void fill_affine(const float* x, const float* w, Block& b) {
    uint8_t q[32];
    float d, m;
    fit_affine(x, w, 32, kHi, q, d, m, true, false, kSearch);
    store_half(b.d, d);
    store_half(b.m, m);
    int c[32];
    for (int j = 0; j < 32; ++j) c[j] = q[j];
    if constexpr (requires { b.qh; }) pack_nibbles(c, b.qs, &b.qh);
    else pack_nibbles(c, b.qs, nullptr);
}

// The affine kinds with weights fit sixteen blocks at a time, as quantize_symmetric does.
// (Without weights, the fast effort, the one-block fit sums x in another order.)
template <int kHi, class Block, Search kSearch = Search{}>
void quantize_affine(const float* x, uint8_t* dst, int64_t n, const float* importance) {
    Block* b = blocks<Block>(dst);
    for_each_group16(x, n, importance, true, [&](const float* xs, const float* w, int g) {
        float d[16], m[16];
        uint8_t q[16 * 32];
        fit_affine16(xs, w, 32, kHi, q, true, false, kSearch, d, m);
        for (int k = 0; k < g; ++k, ++b) {
            store_half(b->d, d[k]);
            store_half(b->m, m[k]);
            int c[32];
            for (int j = 0; j < 32; ++j) c[j] = q[32 * k + j];
            if constexpr (requires { b->qh; }) pack_nibbles(c, b->qs, &b->qh);
            else pack_nibbles(c, b->qs, nullptr);
        }
    });
}

// Fast effort without importance weights: every block judged by its plain squared error (no
// per-value weights computed), so its scale is at least as good as the reference rounding's
// one, which is among the candidates.
template <class Block, int kValues, class Fill>
void quantize_blocks_plain(const float* x, uint8_t* dst, int64_t n, Fill fill) {
    Block* b = blocks<Block>(dst);
    for (int64_t i = 0; i < n; i += kValues, ++b) fill(x + i, nullptr, *b);
}
template <class Block, auto kFill>
void plain(const float* x, uint8_t* dst, int64_t n, const float*) {
    quantize_blocks_plain<Block, 32>(x, dst, n, kFill);
}

// Q4_0's default with an importance matrix refits twice from each start, as the other legacy
// types do (kDefaultLegacy): once, its importance-weighted RMSE came out above ggml's on a
// generated input of offset rows with flat importance (1.0022x; test_quant_generated.cpp) and
// level with it on log-normal importance (0.99999x).
template <Search kSearch = kDefaultQ4_0, Search kWithImportance = kDefaultLegacy>
void quantize_q4_0(const float* x, uint8_t* dst, int64_t n, const float* imp) {
    if (imp) quantize_symmetric<-8, 7, BlockQ4_0, kWithImportance>(x, dst, n, imp);
    else quantize_symmetric<-8, 7, BlockQ4_0, kSearch>(x, dst, n, imp);
}
template <Search kSearch = kDefaultLegacy>
void quantize_q5_0(const float* x, uint8_t* dst, int64_t n, const float* imp) {
    quantize_symmetric<-16, 15, BlockQ5_0, kSearch>(x, dst, n, imp);
}
// Q4_1 and Q5_1 search up to three refits from five starts (Search{}) with an importance
// matrix (where ggml searches too), and one refit from three without one (kDefaultAffinePlain;
// ggml rounds once). Without: 2.8 against 5.4 ns a value on one thread; RMSE / ggml's rounding
// on rmse.tsv's rows 0.918 / 0.904 against 0.895 / 0.877 (Q4_1); the 984 MB model's Q4_1 mix
// in 1.14 s against 1.69 s, llama.cpp's quantizer 2.74 s (median of 3, 2026-12-05, README).
constexpr Search kDefaultAffinePlain{1, 1};
template <Search kWith = Search{}, Search kWithout = kDefaultAffinePlain>
void quantize_q4_1(const float* x, uint8_t* dst, int64_t n, const float* imp) {
    if (imp) quantize_affine<15, BlockQ4_1, kWith>(x, dst, n, imp);
    else quantize_affine<15, BlockQ4_1, kWithout>(x, dst, n, imp);
}
template <Search kWith = Search{}, Search kWithout = kDefaultAffinePlain>
void quantize_q5_1(const float* x, uint8_t* dst, int64_t n, const float* imp) {
    if (imp) quantize_affine<31, BlockQ5_1, kWith>(x, dst, n, imp);
    else quantize_affine<31, BlockQ5_1, kWithout>(x, dst, n, imp);
}
// Q8_0: a weighted search (quantize_q8_0), with or without importance weights (without, the
// weights are sqrt(sigma^2 + x^2) as for every other type): its starts map the largest value to
// 127 and to 127 -+ 0.5 k for k up to kSearch.steps, each start's least-squares refit judged
// by the bound from its pass (Search::bound_refits; the codes at 127 k's mirror image, -127,
// give the same errors and are not tried). The fast effort without importance weights is
// llama.cpp's rounding (quantize_q8_0_rounded: its bytes), with them the one start at 127 and
// its refit. Measured with importance weights, against the two-step search with three refits
// used before 2026-12-05 (rmse.tsv importance rows, weighted RMSE / ggml's, gauss and heavy;
// mean KL divergence / llama.cpp's file, tiny and trained model; 984 MB model, 2 threads):
//   before            0.843 0.931   0.959 0.965   2.28 s (1.41 s without the mirror starts)
//   fast    (0 steps) 0.923 0.970   1.015 1.003   0.72-0.83 s
//   default (3 steps) 0.839 0.918   0.942 0.971   1.03-1.09 s
//   best   (10 steps) 0.790 0.854   0.880 0.955   1.45-1.56 s
// (fast: less importance-weighted error than llama.cpp's bytes on those rows, but not less
// KL divergence.) Without them (until 2026-12-05 every effort wrote llama.cpp's rounding), the
// tiny model's Q8_0 mix 1.000 -> 0.960 (default) and 0.853 (best) of llama.cpp's file's mean KL
// divergence; the trained model's Q8_0 (no imatrix; its held-out text, c = 256, ggml
// activations) 0.952 and 0.935 of the rounding's; the 984 MB model's Q8_0 mix 0.46 -> 0.96 s.
constexpr Search kFastQ8_0{0, 0, true}, kDefaultQ8_0{3, 0, true}, kBestQ8_0{10, 0, true};
// std::round for |v| < 2^23 (halves away from zero) as an integer, with integer selects
// only so that the loop vectorizes: a - trunc(a) is exact there.
inline int32_t round_half_away(float v) {
    const float a = std::fabs(v);
    const int32_t t = static_cast<int32_t>(a);
    const int32_t r = t + (a - static_cast<float>(t) >= 0.5f ? 1 : 0);
    return v < 0 ? -r : r;
}

// Cloned for AVX2: rounding, max and one multiply per value give the same bits on any path.
QUANT_AVX2_CLONE void quantize_q8_0_rounded(const float* x, uint8_t* dst, int64_t n) {
    BlockQ8_0* b = blocks<BlockQ8_0>(dst);
    for (int64_t i = 0; i < n; i += 32, ++b) {
        float amax = 0;
#pragma omp simd reduction(max : amax)
        for (int j = 0; j < 32; ++j) amax = std::max(amax, std::fabs(x[i + j]));
        const float d = amax / 127.0f;
        if (d > 65504.0f) {  // beyond f16 (llama.cpp would store Inf): the largest scale, codes clamped
            store_half(b->d, 65504.0f);
            for (int j = 0; j < 32; ++j) b->qs[j] = static_cast<int8_t>(std::clamp(std::round(x[i + j] / 65504.0f), -127.0f, 127.0f));
            continue;
        }
        const float id = d != 0 ? 1.0f / d : 0.0f;
        store_half(b->d, d);
        for (int j = 0; j < 32; ++j) b->qs[j] = static_cast<int8_t>(round_half_away(x[i + j] * id));
    }
}

template <Search kSearch = kDefaultQ8_0>
void quantize_q8_0(const float* x, uint8_t* dst, int64_t n, const float* imp) {
    quantize_symmetric<-127, 127, BlockQ8_0, kSearch>(x, dst, n, imp);
}
void quantize_q8_0_fast(const float* x, uint8_t* dst, int64_t n, const float* imp) {
    if (imp) return quantize_symmetric<-127, 127, BlockQ8_0, kFastQ8_0>(x, dst, n, imp);
    quantize_q8_0_rounded(x, dst, n);
}

// Fast effort: the few candidates without importance weights, where ggml rounds once; with
// them ggml searches too (a weighted search over many scales), and so does the default here.
template <QuantizeRowFn kFast, QuantizeRowFn kDefault>
void fast(const float* x, uint8_t* dst, int64_t n, const float* imp) {
    (imp ? kDefault : kFast)(x, dst, n, imp);
}

// The symmetric kinds' fast effort without weights (quantize_symmetric<.., kFastSearch,
// false>) one block at a time on AVX-512, where the CPU has it: the same bytes. Per block the
// two scales that send its first largest value to kLo and to kHi, as f16 stores them; for each
// the nearest codes and the plain squared error, summed as pass8 sums it (the p-th value into
// partial p mod 8, those added in lane_sum's tree), so that the same scale wins (kLo's on a
// tie). A block the lanes would leave to the one-block fit (largest magnitude 0 or not
// finite, a scale of 0 or with no finite inverse, no finite error) goes to it here too.
#if defined(__GNUC__) && !defined(__clang__) && defined(__x86_64__) && !defined(QUANT_NO_CLONES)
#define LEGACY_AVX512 1
#include <immintrin.h>
#pragma GCC diagnostic push  // GCC 12's _mm512_reduce_* read an uninitialized half-vector
#pragma GCC diagnostic ignored "-Wuninitialized"
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#define LEGACY_TARGET __attribute__((target("avx512f,avx512bw,avx512dq,avx512vl")))

// The plain squared error of codes c (two vectors of 16) for scale d, in pass8's order.
LEGACY_TARGET inline float pass_error(__m512 a, __m512 b, __m512 ca, __m512 cb, __m512 d) {
    const __m512 ea = _mm512_sub_ps(a, _mm512_mul_ps(d, ca)), eb = _mm512_sub_ps(b, _mm512_mul_ps(d, cb));
    const __m512 sa = _mm512_mul_ps(ea, ea), sb = _mm512_mul_ps(eb, eb);
    // partial k (k < 8): values k, k + 8, k + 16, k + 24, added in that order
    __m256 s = _mm256_add_ps(_mm512_castps512_ps256(sa), _mm512_extractf32x8_ps(sa, 1));
    s = _mm256_add_ps(s, _mm512_castps512_ps256(sb));
    s = _mm256_add_ps(s, _mm512_extractf32x8_ps(sb, 1));
    // ((P0 + P4) + (P2 + P6)) + ((P1 + P5) + (P3 + P7))
    const __m128 t = _mm_add_ps(_mm256_castps256_ps128(s), _mm256_extractf128_ps(s, 1));
    const __m128 u = _mm_add_ps(t, _mm_movehl_ps(t, t));
    return _mm_cvtss_f32(_mm_add_ss(u, _mm_movehdup_ps(u)));
}

// The codes clamp(round(x / d), lo, hi) (halves to even), as floats.
LEGACY_TARGET inline __m512 nearest_codes(__m512 v, __m512 inverse, __m512 lo, __m512 hi) {
    const __m512 t = _mm512_min_ps(_mm512_max_ps(_mm512_mul_ps(v, inverse), lo), hi);
    return _mm512_roundscale_ps(t, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
}

template <int kLo, int kHi, class Block>
LEGACY_TARGET void quantize_symmetric_fast_avx512(const float* x, uint8_t* dst, int64_t n) {
    static constexpr float kOnes[32] = {1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1};
    const __m512 lo = _mm512_set1_ps(static_cast<float>(kLo)), hi = _mm512_set1_ps(static_cast<float>(kHi));
    const __m512i offset = _mm512_set1_epi32(-kLo);
    Block* b = blocks<Block>(dst);
    for (int64_t i = 0; i < n; i += 32, ++b) {
        const float* xb = x + i;
        const __m512 a = _mm512_loadu_ps(xb), c = _mm512_loadu_ps(xb + 16);
        const __m512 aa = _mm512_abs_ps(a), ac = _mm512_abs_ps(c);
        const float amax = _mm512_reduce_max_ps(_mm512_max_ps(aa, ac));
        float d[2], err[2] = {0, 0};
        __m512 codes[2][2];
        bool odd = !(amax > 0 && amax <= std::numeric_limits<float>::max());
        if (!odd) {
            const __m512 m = _mm512_set1_ps(amax);
            const uint32_t at = static_cast<uint32_t>(_mm512_cmp_ps_mask(aa, m, _CMP_EQ_OQ)) |
                                static_cast<uint32_t>(_mm512_cmp_ps_mask(ac, m, _CMP_EQ_OQ)) << 16;
            const float xmax = xb[__builtin_ctz(at)];
            for (int k = 0; k < 2; ++k) {
                d[k] = as_stored_f16(std::clamp(xmax / static_cast<float>(k == 0 ? kLo : kHi), -65504.0f, 65504.0f));
                const float inverse = 1.0f / d[k];
                odd |= d[k] == 0 || !(std::fabs(inverse) <= std::numeric_limits<float>::max());
                if (odd) break;
                const __m512 vi = _mm512_set1_ps(inverse), vd = _mm512_set1_ps(d[k]);
                codes[k][0] = nearest_codes(a, vi, lo, hi);
                codes[k][1] = nearest_codes(c, vi, lo, hi);
                err[k] = pass_error(a, c, codes[k][0], codes[k][1], vd);
            }
        }
        constexpr float inf = std::numeric_limits<float>::infinity();
        const int pick = err[1] < err[0] ? 1 : 0;  // kHi's only where strictly lower
        if (odd || !(err[pick] < inf)) {
            int8_t q[32];
            pack_symmetric<kLo>(fit_symmetric(xb, kOnes, 32, kLo, kHi, q, true, kFastSearch), q, *b);
            continue;
        }
        store_half(b->d, d[pick]);
        const __m512i qa = _mm512_add_epi32(_mm512_cvtps_epi32(codes[pick][0]), offset);
        const __m512i qc = _mm512_add_epi32(_mm512_cvtps_epi32(codes[pick][1]), offset);
        // nibbles: value j low, value j + 16 high
        const __m512i low = _mm512_and_si512(qa, _mm512_set1_epi32(0x0f)), high = _mm512_and_si512(qc, _mm512_set1_epi32(0x0f));
        _mm_storeu_si128(reinterpret_cast<__m128i*>(b->qs), _mm512_cvtepi32_epi8(_mm512_or_si512(low, _mm512_slli_epi32(high, 4))));
        if constexpr (requires { b->qh; }) {
            const uint32_t bits = static_cast<uint32_t>(_mm512_test_epi32_mask(qa, _mm512_set1_epi32(0x10))) |
                                  static_cast<uint32_t>(_mm512_test_epi32_mask(qc, _mm512_set1_epi32(0x10))) << 16;
            for (int k = 0; k < 4; ++k) b->qh[k] = static_cast<uint8_t>(bits >> (8 * k));
        }
    }
}
#pragma GCC diagnostic pop
#undef LEGACY_TARGET
#endif

// The fast effort of the symmetric kinds without weights: the AVX-512 blocks where the CPU
// has them (and tests have not turned them off), else sixteen blocks at a time.
template <int kLo, int kHi, class Block>
void quantize_symmetric_fast(const float* x, uint8_t* dst, int64_t n, const float* imp) {
#ifdef LEGACY_AVX512
    if (wide_paths()) return quantize_symmetric_fast_avx512<kLo, kHi, Block>(x, dst, n);
#endif
    quantize_symmetric<kLo, kHi, Block, kFastSearch, false>(x, dst, n, imp);
}

}  // namespace

void register_legacy(TraitsTable& t) {
    using K = ScaleKind;
    add_block_type<BlockQ4_0>(t, quantize_q4_0<>, {{K::F16, offsetof(BlockQ4_0, d), "d"}});
    add_block_type<BlockQ4_1>(t, quantize_q4_1<>, {{K::F16, offsetof(BlockQ4_1, d), "d"}, {K::F16, offsetof(BlockQ4_1, m), "m"}});
    add_block_type<BlockQ5_0>(t, quantize_q5_0<>, {{K::F16, offsetof(BlockQ5_0, d), "d"}});
    add_block_type<BlockQ5_1>(t, quantize_q5_1<>, {{K::F16, offsetof(BlockQ5_1, d), "d"}, {K::F16, offsetof(BlockQ5_1, m), "m"}});
    set_efforts(t, TypeId::Q4_0, fast<quantize_symmetric_fast<-8, 7, BlockQ4_0>, quantize_q4_0<>>, quantize_q4_0<kBestLegacy, kBestLegacy>);
    set_efforts(t, TypeId::Q5_0, fast<quantize_symmetric_fast<-16, 15, BlockQ5_0>, quantize_q5_0<>>, quantize_q5_0<kBestLegacy>);
    set_efforts(t, TypeId::Q4_1, fast<plain<BlockQ4_1, fill_affine<15, BlockQ4_1, kFastSearch>>, quantize_q4_1<>>, quantize_q4_1<Search{3, 4}, Search{3, 4}>);
    set_efforts(t, TypeId::Q5_1, fast<plain<BlockQ5_1, fill_affine<31, BlockQ5_1, kFastSearch>>, quantize_q5_1<>>, quantize_q5_1<Search{3, 4}, Search{3, 4}>);
    add_block_type<BlockQ8_0>(t, quantize_q8_0<>, {{K::F16, offsetof(BlockQ8_0, d), "d"}});
    set_efforts(t, TypeId::Q8_0, quantize_q8_0_fast, quantize_q8_0<kBestQ8_0>, {true, true, true, true});
    set_fitted_scales(t, {TypeId::Q4_0, TypeId::Q4_1, TypeId::Q5_0, TypeId::Q5_1, TypeId::Q8_0});
    // The activation format of dot products (kernels/ quantizes to it): read, not written here.
    add_block_type<BlockQ8_1>(t, nullptr, {{K::F16, offsetof(BlockQ8_1, d), "d"}, {K::F16, offsetof(BlockQ8_1, s), "s"}});
}

}  // namespace quant::detail
