#include "grid_fit.h"

#include <algorithm>
#include <bit>
#include <cmath>
#include <cstring>
#if defined(__x86_64__)
#include <immintrin.h>
#endif
#include <iterator>
#include <limits>

#include "fit.h"
#include "iq_grids.h"
#include "quant/grids.h"

namespace quant::detail {

namespace {

template <class T, size_t N> Grid unpack(const T (&table)[N], int k) {
    Grid g;
    g.entries = static_cast<int>(N);
    g.k = k;
    g.value.resize(N * static_cast<size_t>(k));
    for (size_t e = 0; e < N; ++e)
        for (int j = 0; j < k; ++j) {
            const float v = static_cast<float>((table[e] >> (8 * j)) & 0xff);
            g.value[static_cast<size_t>(j) * N + e] = v;
            g.max_magnitude = std::max(g.max_magnitude, v);
            if (v > 0 && std::find(g.magnitudes.begin(), g.magnitudes.end(), v) == g.magnitudes.end()) g.magnitudes.push_back(v);
        }
    std::sort(g.magnitudes.begin(), g.magnitudes.end());
    return g;
}

Grid unpack_iq1() {
    Grid g;
    g.entries = 2 * 2048;
    g.k = 8;
    g.value.resize(static_cast<size_t>(g.entries) * 8);
    for (int half = 0; half < 2; ++half)
        for (int e = 0; e < 2048; ++e)
            for (int j = 0; j < 8; ++j) {
                const float v = static_cast<float>(static_cast<int8_t>(grids::kIQ1S[e] >> (8 * j))) + (half ? -0.125f : 0.125f);
                g.value[static_cast<size_t>(j * g.entries + half * 2048 + e)] = v;
                g.max_magnitude = std::max(g.max_magnitude, std::fabs(v));
            }
    g.magnitudes = {0.125f, 0.875f};
    return g;
}

constexpr int kSuper = 256;

// The grid searches below run entries side by side in 8-lane vectors (one AVX2 register,
// two SSE ones), each lane computing exactly what a scalar loop over the entries would, so
// every clone finds the same bits. (GCC's 16-lane vectors in an AVX-512 clone measured
// slower; the entry scan has an AVX-512 path of its own, in intrinsics.)
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wpsabi"  // the vectors never cross a call
using F8 = float __attribute__((vector_size(32)));
using I8 = int __attribute__((vector_size(32)));
constexpr I8 kLane = {0, 1, 2, 3, 4, 5, 6, 7};

// Lane by lane, (v, at) becomes the lesser of (v, at) and (v2, at2): the smaller value, or
// the lower entry of equal ones. Always inlined and by reference: the AVX2 clone and the
// default one pass vectors in different registers, so an out-of-line copy taking them by
// value (an -O1 build) would be called with the wrong convention.
[[gnu::always_inline]] inline void fold_lanes(F8& v, I8& at, const F8& v2, const I8& at2) {
    const I8 other = (v2 < v) | ((v2 == v) & (at2 < at));
    v = other ? v2 : v;
    at = other ? at2 : at;
}

// The scan's step over entries [e, hi) one by one, from the least (best_v, best_e) so far.
[[gnu::always_inline]] inline int scan_rest(const float* A, const float* B, int e, int hi, float dl, float& best_v, int best_e) {
    for (; e < hi; ++e) {
        const float t = dl * (dl * B[e] - 2 * A[e]);
        if (t < best_v) {
            best_v = t;
            best_e = e;
        }
    }
    return best_e;
}

#if defined(__GNUC__) && !defined(__clang__) && defined(__x86_64__) && !defined(QUANT_NO_CLONES)
#define GRID_AVX512 1
// The same scan on 32 lanes (two AVX-512 registers); the answer does not depend on the lane
// count.
#pragma GCC diagnostic push  // GCC 12's _mm512_reduce_* read an uninitialized half-vector
#pragma GCC diagnostic ignored "-Wuninitialized"
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
__attribute__((target("avx512f"))) int first_minimum_avx512(const float* A, const float* B, int lo, int hi, float dl,
                                                            float& best_v) {
    constexpr float inf = std::numeric_limits<float>::infinity();
    const __m512 vdl = _mm512_set1_ps(dl);
    __m512 v0 = _mm512_set1_ps(inf), v1 = v0;
    const __m512i lane = _mm512_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15);
    __m512i e0 = _mm512_set1_epi32(lo), e1 = e0;
    int e = lo;
    for (; e + 32 <= hi; e += 32) {
        const __m512 a0 = _mm512_loadu_ps(A + e), a1 = _mm512_loadu_ps(A + e + 16);
        const __m512 b0 = _mm512_loadu_ps(B + e), b1 = _mm512_loadu_ps(B + e + 16);
        const __m512 t0 = _mm512_mul_ps(vdl, _mm512_sub_ps(_mm512_mul_ps(vdl, b0), _mm512_add_ps(a0, a0)));
        const __m512 t1 = _mm512_mul_ps(vdl, _mm512_sub_ps(_mm512_mul_ps(vdl, b1), _mm512_add_ps(a1, a1)));
        const __mmask16 s0 = _mm512_cmp_ps_mask(t0, v0, _CMP_LT_OQ), s1 = _mm512_cmp_ps_mask(t1, v1, _CMP_LT_OQ);
        v0 = _mm512_mask_mov_ps(v0, s0, t0);
        v1 = _mm512_mask_mov_ps(v1, s1, t1);
        e0 = _mm512_mask_mov_epi32(e0, s0, _mm512_add_epi32(_mm512_set1_epi32(e), lane));
        e1 = _mm512_mask_mov_epi32(e1, s1, _mm512_add_epi32(_mm512_set1_epi32(e + 16), lane));
    }
    // The least (v, entry) pair: v1's lane wins where smaller, or equal with a lower entry.
    const __mmask16 other = _mm512_cmp_ps_mask(v1, v0, _CMP_LT_OQ) |
                            (_mm512_cmp_ps_mask(v1, v0, _CMP_EQ_OQ) & _mm512_cmplt_epi32_mask(e1, e0));
    v0 = _mm512_mask_mov_ps(v0, other, v1);
    e0 = _mm512_mask_mov_epi32(e0, other, e1);
    best_v = _mm512_reduce_min_ps(v0);
    int best_e = lo;
    if (best_v < inf) best_e = _mm512_mask_reduce_min_epi32(_mm512_cmp_ps_mask(v0, _mm512_set1_ps(best_v), _CMP_EQ_OQ), e0);
    return scan_rest(A, B, e, hi, dl, best_v, best_e);  // past the last whole 32: later than any lane's
}
#pragma GCC diagnostic pop
const bool kHasAvx512 = (__builtin_cpu_init(), __builtin_cpu_supports("avx512f"));  // init: this runs in a static initializer
#endif

// The first e in [lo, hi) with the least v_e = dl (dl B[e] - 2 A[e]) (NaNs never chosen;
// lo, with v = +inf, when no v_e is finite), and that v: what a scan keeping each strictly
// smaller value finds. Most of the grid i-quants' time is here. Sixteen lanes (two
// vectors): lane l keeps the first least value among the entries e = l (mod 16), and the
// least (v, e) pair over the lanes is the scan's answer. Where the CPU has AVX-512 (and the
// library its clones), the same scan runs on 32 lanes: 1.2-1.3x faster on IQ3_XXS/IQ3_S.
QUANT_AVX2_CLONE
int first_minimum(const float* A, const float* B, int lo, int hi, float dl, float& best_v) {
#ifdef GRID_AVX512
    if (kHasAvx512) return first_minimum_avx512(A, B, lo, hi, dl, best_v);
#endif
    constexpr float inf = std::numeric_limits<float>::infinity();
    F8 v0 = F8{} + inf, v1 = v0;
    I8 e0 = I8{} + lo, e1 = e0;
    int e = lo;
    for (; e + 16 <= hi; e += 16) {
        F8 a0, a1, b0, b1;
        std::memcpy(&a0, A + e, sizeof a0);
        std::memcpy(&a1, A + e + 8, sizeof a1);
        std::memcpy(&b0, B + e, sizeof b0);
        std::memcpy(&b1, B + e + 8, sizeof b1);
        const F8 t0 = dl * (dl * b0 - 2 * a0), t1 = dl * (dl * b1 - 2 * a1);
        const I8 s0 = t0 < v0, s1 = t1 < v1;
        v0 = s0 ? t0 : v0;
        v1 = s1 ? t1 : v1;
        e0 = s0 ? e + kLane : e0;
        e1 = s1 ? e + 8 + kLane : e1;
    }
    // Fold the lanes pairwise down to one. A lane that never found a finite value holds
    // (+inf, lo), and lo is no later than any lane's entry.
    fold_lanes(v0, e0, v1, e1);
    fold_lanes(v0, e0, __builtin_shufflevector(v0, v0, 4, 5, 6, 7, 0, 1, 2, 3), __builtin_shufflevector(e0, e0, 4, 5, 6, 7, 0, 1, 2, 3));
    fold_lanes(v0, e0, __builtin_shufflevector(v0, v0, 2, 3, 0, 1, 6, 7, 4, 5), __builtin_shufflevector(e0, e0, 2, 3, 0, 1, 6, 7, 4, 5));
    fold_lanes(v0, e0, __builtin_shufflevector(v0, v0, 1, 0, 3, 2, 5, 4, 7, 6), __builtin_shufflevector(e0, e0, 1, 0, 3, 2, 5, 4, 7, 6));
    best_v = v0[0];
    int best_e = v0[0] < inf ? e0[0] : lo;
    return scan_rest(A, B, e, hi, dl, best_v, best_e);  // past the last whole 16: later than any lane's
}

// A_e = sum_j w_j a_j g_ej and B_e = sum_j w_j g_ej^2 for every entry of the grid, for one
// group's k targets a and weights w, each summed over j in order.
QUANT_AVX2_CLONE
void entry_sums(const Grid& g, const float* a, const float* w, float* A, float* B) {
    for (int e = 0; e < g.entries; e += 8) {
        F8 sa{}, sb{};
        for (int j = 0; j < g.k; ++j) {
            F8 ge;
            std::memcpy(&ge, g.value.data() + j * g.entries + e, sizeof ge);
            sa += (w[j] * a[j]) * ge;
            sb += (w[j] * ge) * ge;
        }
        std::memcpy(A + e, &sa, sizeof sa);
        std::memcpy(B + e, &sb, sizeof sb);
    }
}

// For k = g.k targets a: the least weighted error over all entries with a_f negated, for
// each f (to flipped[f]), and with none negated (returned). Each error is summed over j in
// order, as one search per flip would sum it (the same bits), but the sums share their
// terms: those before f are the unflipped prefix, those after it the unflipped terms.
QUANT_AVX2_CLONE
float flip_errors(const Grid& g, const float* a, const float* w, float dl, float* flipped) {
    constexpr float inf = std::numeric_limits<float>::infinity();
    const int k = g.k;
    F8 best[9];
    for (int f = 0; f <= k; ++f) best[f] = F8{} + inf;
    for (int e = 0; e < g.entries; e += 8) {
        F8 term[8], term_flipped[8];
        for (int j = 0; j < k; ++j) {
            F8 ge;
            std::memcpy(&ge, g.value.data() + j * g.entries + e, sizeof ge);
            const F8 d = a[j] - dl * ge, df = -a[j] - dl * ge;
            term[j] = (w[j] * d) * d;
            term_flipped[j] = (w[j] * df) * df;
        }
        F8 prefix{};
        for (int f = 0; f < k; ++f) {
            F8 err = prefix + term_flipped[f];
            for (int j = f + 1; j < k; ++j) err += term[j];
            best[f] = err < best[f] ? err : best[f];
            prefix += term[f];
        }
        best[k] = prefix < best[k] ? prefix : best[k];
    }
    auto least = [](const F8& v) {
        float m = inf;
        for (int l = 0; l < 8; ++l) m = std::min(m, v[l]);
        return m;
    };
    for (int f = 0; f < k; ++f) flipped[f] = least(best[f]);
    return least(best[k]);
}
#pragma GCC diagnostic pop

// Per group of k values: A_e and B_e for every entry, and C = sum w a^2.
struct Tables {
    std::vector<float> A, B, C;
    void build(const Grid& g, const float* a, const float* w, int groups) {
        A.assign(static_cast<size_t>(groups * g.entries), 0);
        B.assign(A.size(), 0);
        C.assign(static_cast<size_t>(groups), 0);
        for (int q = 0; q < groups; ++q) {
            const float* ag = a + q * g.k;
            const float* wg = w + q * g.k;
            for (int j = 0; j < g.k; ++j) C[q] += wg[j] * ag[j] * ag[j];
            entry_sums(g, ag, wg, A.data() + q * g.entries, B.data() + q * g.entries);
        }
    }
    // The best entry in [lo, hi) for group q at scale dl, and its error.
    int best(int q, int entries, int lo, int hi, float dl, float& err) const {
        float best_v;
        const int e = first_minimum(A.data() + q * entries, B.data() + q * entries, lo, hi, dl, best_v);
        err = C[q] + best_v;
        return e;
    }
};

// Error of groups [first, first + count) at scale dl, their entries (from [lo, hi)) written
// to `entry`.
float assign(const Tables& t, const Grid& g, int first, int count, float dl, uint16_t* entry, int lo, int hi) {
    float err = 0;
    for (int q = first; q < first + count; ++q) {
        float e;
        entry[q] = static_cast<uint16_t>(t.best(q, g.entries, lo, hi, dl, e));
        err += e;
    }
    return err;
}

// Least-squares scale for the entries chosen: sum A / sum B over the groups.
float refit(const Tables& t, const Grid& g, int first, int count, const uint16_t* entry) {
    float sa = 0, sb = 0;
    for (int q = first; q < first + count; ++q) {
        sa += t.A[q * g.entries + entry[q]];
        sb += t.B[q * g.entries + entry[q]];
    }
    return sb > 0 ? std::max(0.0f, sa / sb) : 0.0f;
}

}  // namespace

const Grid& grid_iq2xxs() { static const Grid g = unpack(grids::kIQ2XXS, 8); return g; }
const Grid& grid_iq2xs() { static const Grid g = unpack(grids::kIQ2XS, 8); return g; }
const Grid& grid_iq2s() { static const Grid g = unpack(grids::kIQ2S, 8); return g; }
const Grid& grid_iq3xxs() { static const Grid g = unpack(grids::kIQ3XXS, 4); return g; }
const Grid& grid_iq3s() { static const Grid g = unpack(grids::kIQ3S, 4); return g; }
const Grid& grid_iq1() { static const Grid g = unpack_iq1(); return g; }

namespace {

// For 8 values whose signs have odd parity, the one to store with the wrong sign: the one
// whose flip leaves the least error once the grid does its best, at a provisional scale.
int best_flip(const Grid& g, const float* a, const float* w, float dl) {
    // Each part of g.k values: its least error with each value negated, and as it is.
    float flipped[8], unflipped[2];
    for (int h = 0; h < 8; h += g.k) unflipped[h / g.k] = flip_errors(g, a + h, w + h, dl, flipped + h);
    int best_j = 0;
    float best = std::numeric_limits<float>::infinity();
    for (int j = 0; j < 8; ++j) {
        float err = 0;
        for (int h = 0; h < 8; h += g.k) err += j / g.k == h / g.k ? flipped[j] : unflipped[h / g.k];
        if (err < best) {
            best = err;
            best_j = j;
        }
    }
    return best_j;
}

}  // namespace

GridFit fit_grid(const float* x, const float* w, const Grid& grid, ScaleCode code, GridOptions options) {
    const int scale_span = options.scale_span;
    const bool parity_signs = options.parity_signs;
    GridFit f;
    // Signs, and the signed targets a: |x|, or -|x| for a value whose sign parity forced.
    float a[kSuper];
    for (int o = 0; o < kSuper / 8; ++o) {
        uint8_t mask = 0;
        for (int j = 0; j < 8; ++j) {
            const int i = 8 * o + j;
            if (x[i] < 0 && !options.signed_grid) mask |= static_cast<uint8_t>(1u << j);
            a[i] = options.signed_grid ? x[i] : std::fabs(x[i]);
        }
        if (parity_signs && (std::popcount(mask) & 1)) {
            const int span = (8 * o) / scale_span * scale_span;
            float amax = 0;
            for (int i = span; i < span + scale_span; ++i) amax = std::max(amax, std::fabs(x[i]));
            const int j = best_flip(grid, a + 8 * o, w + 8 * o, amax / grid.max_magnitude * 0.8f);
            mask ^= static_cast<uint8_t>(1u << j);
            a[8 * o + j] = -a[8 * o + j];
        }
        f.signs[o] = mask;
    }
    const int groups = kSuper / grid.k, per_scale = scale_span / grid.k, scales = kSuper / scale_span;
    static thread_local Tables t;
    t.build(grid, a, w, groups);

    // Each scale's span on its own (for each half of the grid it may draw from).
    const int half_size = grid.entries / options.entry_halves;
    auto span_error = [&](int first, float dl_s, uint16_t* entries) {
        float best = std::numeric_limits<float>::infinity();
        uint16_t tmp[64];
        for (int h = 0; h < options.entry_halves; ++h) {
            const float err = assign(t, grid, first, per_scale, dl_s, tmp, h * half_size, (h + 1) * half_size);
            if (err < best) {
                best = err;
                std::copy(tmp + first, tmp + first + per_scale, entries + first);
            }
        }
        return best;
    };
    float dl[16], dl_weight[16];
    uint16_t trial[64];
    for (int s = 0; s < scales; ++s) {
        const int first = s * per_scale;
        float amax = 0;
        for (int i = s * scale_span; i < (s + 1) * scale_span; ++i) amax = std::max(amax, std::fabs(a[i]));
        float best = std::numeric_limits<float>::infinity();
        dl[s] = 0;
        // Starting scales: the largest value on the largest magnitude (and a little short of
        // it), and on each smaller magnitude (flat spans match entries of equal small ones).
        std::vector<float> starts;
        for (float factor : {0.6f, 0.75f, 0.9f, 1.05f}) starts.push_back(amax / grid.max_magnitude * factor);
        for (float m : grid.magnitudes)
            if (m < grid.max_magnitude) starts.push_back(amax / m);
        // The rounds from different starts often reach the same scale (a third of the trials
        // on IQ2_XS): a scale tried before gives the same entries and error without a search.
        struct Tried {
            float d, err;
            uint16_t entries[8];
        };
        Tried tried[64];
        int n_tried = 0;
        auto trial_error = [&](float d) {
            for (int i = 0; i < n_tried; ++i)
                if (tried[i].d == d) {
                    std::copy(tried[i].entries, tried[i].entries + per_scale, trial + first);
                    return tried[i].err;
                }
            const float err = span_error(first, d, trial);
            if (n_tried < 64 && per_scale <= 8) {
                tried[n_tried] = {d, err, {}};
                std::copy(trial + first, trial + first + per_scale, tried[n_tried++].entries);
            }
            return err;
        };
        for (float start : starts) {
            float d = start;
            for (int round = 0; round < 3 && d > 0; ++round) {
                const float err = trial_error(d);
                if (err < best) {
                    best = err;
                    dl[s] = d;
                    std::copy(trial + first, trial + first + per_scale, f.entry + first);
                }
                d = refit(t, grid, first, per_scale, trial);
            }
        }
        dl_weight[s] = 0;
        for (int q = first; q < first + per_scale; ++q) dl_weight[s] += t.B[q * grid.entries + f.entry[q]];
    }

    // The 4-bit scale codes against d: dl = d x alpha x (s + 0.5).
    float v[16];
    float vmax = 0;
    for (int s = 0; s < scales; ++s) vmax = std::max(vmax, v[s] = dl[s] / code.alpha);
    float best_err = std::numeric_limits<float>::infinity();
    const float codes = static_cast<float>(code.max_code);
    for (float top : {codes + 0.5f, codes - 0.5f, codes - 1.5f, codes - 2.5f}) {
        float d = as_stored_f16(vmax / top);
        for (int round = 0; round < 3 && d > 0; ++round) {
            float err = 0, num = 0, den = 0;
            uint8_t sc[16];
            for (int s = 0; s < scales; ++s) {
                const float c = std::clamp(std::nearbyint(v[s] / d - 0.5f), 0.0f, codes);
                sc[s] = static_cast<uint8_t>(c);
                const float e = v[s] - d * (c + 0.5f);
                err += dl_weight[s] * e * e;
                num += dl_weight[s] * v[s] * (c + 0.5f);
                den += dl_weight[s] * (c + 0.5f) * (c + 0.5f);
            }
            if (err < best_err) {
                best_err = err;
                f.d = d;
                std::copy(sc, sc + scales, f.scale);
            }
            if (den <= 0) break;
            d = as_stored_f16(num / den);
        }
    }

    // Entries for the scales as stored, each code nudged by one where that helps.
    for (int s = 0; s < scales; ++s) {
        const int first = s * per_scale;
        float best = std::numeric_limits<float>::infinity();
        const int base = f.scale[s];
        for (int c = std::max(0, base - 2); c <= std::min(code.max_code, base + 2); ++c) {
            const float err = span_error(first, code.scale(f.d, c), trial);
            if (err < best) {
                best = err;
                f.scale[s] = static_cast<uint8_t>(c);
                std::copy(trial + first, trial + first + per_scale, f.entry + first);
            }
        }
    }
    return f;
}

}  // namespace quant::detail

namespace quant {

const IqGrids& host_grids() {
    using namespace detail::grids;
    static_assert(std::size(kIQ2XXS) == kIQ2XXSGridSize && std::size(kIQ2XS) == kIQ2XSGridSize && std::size(kIQ2S) == kIQ2SGridSize);
    static_assert(std::size(kIQ3XXS) == kIQ3XXSGridSize && std::size(kIQ3S) == kIQ3SGridSize && std::size(kIQ1S) == kIQ1SGridSize);
    static const IqGrids grids{kIQ2XXS, kIQ2XS, kIQ2S, kIQ3XXS, kIQ3S, kIQ1S};
    return grids;
}

}  // namespace quant
