// Ternary and 1-2 bit formats: TQ1_0, TQ2_0 (values -d, 0, +d), Q1_0 (+-d), Q2_0.
#include <algorithm>
#include <bit>
#include <cstdint>
#include <cstring>
#include <cmath>
#include <limits>
#include <stdexcept>

#include "bytes.h"
#include "family.h"
#include "fit.h"

namespace quant::detail {

// The ternary fit of a block: values -d, 0, +d, minimizing sum w (x - d c)^2. For a given d
// each value's best code is sign(x) where |x| > d / 2 and 0 elsewhere, whatever its weight, so
// the best fit keeps the k largest magnitudes for some k, with d their weighted mean
// magnitude and an error of sum w x^2 - (sum w |x|)^2 / (sum w) over them: the best k
// maximizes F(k) = (sum w |x|)^2 / sum w. The magnitudes go into n / 4 buckets (at most 64)
// of equal width up to the largest; F at every bucket edge gives a first best, and each bucket
// whose bound (below) could beat it is scanned: the best k of all. d is then the f16 nearest
// the best real d, or one beside it where the nearest codes give less error.
// Measured against the codebook search it replaced (fit_levels from 5 starts with 3 refits at
// each end of the codebook): 5.8 instead of 13.6 ns a value on TQ1_0 (one thread, bench_quant),
// and less error (test_quant_fits).
// The passes over buckets are branch-free loops over lanes, and a bucket is scanned without
// sorting (every value of it tried as the smallest kept, on lanes): the bound loop's branches
// and the scans' sorts had been most of the time on Q2_0's blocks of 64 (timed by stopping
// the fit after each stage). 6.8 -> 4.2 ns a value there on AVX2 and AVX-512, 7.0 -> 5.6
// without AVX2, and 4.5 -> 3.3 on blocks of 256 (one thread, Student-t rows; the same codes
// as before on 200,000 blocks of 64 and 50,000 of 256).
QUANT_AVX2_CLONE float fit_ternary(const float* x, const float* w, int n, uint8_t* code) {
    if (n < 4 || n > 256) throw std::logic_error("fit_ternary: blocks of 4 to 256 values");
    const int buckets = std::min(64, n / 4);
    float amax = 0;
#pragma omp simd reduction(max : amax)
    for (int i = 0; i < n; ++i) amax = std::max(amax, std::fabs(x[i]));
    double d = 0;
    if (amax > 0) {
        const double to_bucket = buckets / static_cast<double>(amax);  // in double: amax may be subnormal
        uint8_t bucket[256];
#pragma omp simd
        for (int i = 0; i < n; ++i) bucket[i] = static_cast<uint8_t>(std::min(static_cast<double>(buckets - 1), std::fabs(x[i]) * to_bucket));
        // Each bucket's sums of w |x| and w, in double (as the scans below: no overflow, no
        // lost small terms), in four histograms, value i into histogram i % 4: consecutive
        // values in one bucket (the small magnitudes, most of them) are then no chain of
        // dependent additions.
        double part_wa[4][64], part_w[4][64];
        for (int p = 0; p < 4; ++p) {
            std::fill(part_wa[p], part_wa[p] + buckets, 0.0);
            std::fill(part_w[p], part_w[p] + buckets, 0.0);
        }
        for (int i = 0; i < n; ++i) {
            part_wa[i & 3][bucket[i]] += static_cast<double>(w[i]) * std::fabs(x[i]);
            part_w[i & 3][bucket[i]] += w[i];
        }
        double bucket_wa[64], bucket_w[64], suffix_wa[65], suffix_w[65], edge[64];
        for (int j = 0; j < buckets; ++j) {
            bucket_wa[j] = (part_wa[0][j] + part_wa[1][j]) + (part_wa[2][j] + part_wa[3][j]);
            bucket_w[j] = (part_w[0][j] + part_w[1][j]) + (part_w[2][j] + part_w[3][j]);
        }
        // Sums over the buckets from j up (suffix sums), F at each edge, and the best edge:
        // the highest of those with the largest F.
        suffix_wa[buckets] = suffix_w[buckets] = 0;
        for (int j = buckets - 1; j >= 0; --j) {
            suffix_wa[j] = suffix_wa[j + 1] + bucket_wa[j];
            suffix_w[j] = suffix_w[j + 1] + bucket_w[j];
        }
#pragma omp simd
        for (int j = 0; j < buckets; ++j) edge[j] = suffix_w[j] > 0 ? suffix_wa[j] * suffix_wa[j] / suffix_w[j] : 0.0;
        double best = 0, best_wa = 0, best_w = 0;
#pragma omp simd reduction(max : best)
        for (int j = 0; j < buckets; ++j) best = std::max(best, edge[j]);
        if (best > 0) {
            int j = buckets - 1;
            while (edge[j] != best) --j;
            best_wa = suffix_wa[j];
            best_w = suffix_w[j];
        }
        // Every k whose smallest kept magnitude lies in bucket j: the buckets above it kept
        // whole (A0 = suffix_wa[j + 1], W0 = suffix_w[j + 1]) and the largest of its values, of
        // weight u up to its whole weight U and magnitudes between its edges l and h. Their sum
        // of w |x| is at most h u, and at most the bucket's whole sum S less l (U - u), so F is
        // at most min(A0 + h u, A0 + S - l (U - u))^2 / (W0 + u), whose pieces are convex in u:
        // its largest value is at u = 0, U, or where the two lines cross. A bucket whose bound
        // is no more than the best edge's F is passed over (the top bucket's h, from the
        // bucket width, is also above amax: the margin is far larger than the rounding).
        const double width = static_cast<double>(amax) / buckets;
        uint8_t open[64];
#pragma omp simd
        for (int j = 0; j < buckets; ++j) {
            const double a0 = suffix_wa[j + 1], w0 = suffix_w[j + 1], u = bucket_w[j], sum = bucket_wa[j];
            const double h = width * (j + 1) * (1 + 1e-6), l = width * j * (1 - 1e-6);
            const double line = (sum - l * u) / (h - l), cross = line < 0 ? 0.0 : line > u ? u : line;
            open[j] = (u > 0) & ((a0 * a0 > best * w0) | ((a0 + sum) * (a0 + sum) > best * (w0 + u)) |
                                 ((a0 + h * cross) * (a0 + h * cross) > best * (w0 + cross)));
        }
        uint64_t open_mask = 0;
#pragma omp simd reduction(| : open_mask)
        for (int j = 0; j < buckets; ++j) open_mask |= static_cast<uint64_t>(open[j]) << j;
        // Each bucket left, from the top: every one of its values tried as the smallest kept
        // magnitude, eight on lanes at once, each lane summing the bucket's values at least as
        // large as its own (equal magnitudes go together) onto the buckets above. The best F of
        // all is then the best k of all.
        using V4d = double __attribute__((vector_size(32)));
        const V4d zero{};
        while (open_mask) {
            const int j = 63 - std::countl_zero(open_mask);
            open_mask &= ~(uint64_t{1} << j);
            uint8_t member[256];
            int count = 0;
            for (int i = 0; i < n; ++i) {
                member[count] = static_cast<uint8_t>(i);
                count += bucket[i] == j;
            }
            double va[256], vwa[256], vw[256];
            for (int k = 0; k < count; ++k) {
                va[k] = std::fabs(x[member[k]]);
                vw[k] = w[member[k]];
                vwa[k] = va[k] * vw[k];
            }
            for (int c0 = 0; c0 < count; c0 += 8) {
                V4d least0, least1, sa0 = zero + suffix_wa[j + 1], sa1 = sa0, sw0 = zero + suffix_w[j + 1], sw1 = sw0;
                for (int c = 0; c < 4; ++c) {  // lanes past the bucket's values keep nothing of it
                    least0[c] = c0 + c < count ? va[c0 + c] : std::numeric_limits<double>::infinity();
                    least1[c] = c0 + 4 + c < count ? va[c0 + 4 + c] : std::numeric_limits<double>::infinity();
                }
                for (int k = 0; k < count; ++k) {
                    const V4d ak = zero + va[k], wak = zero + vwa[k], wk = zero + vw[k];
                    sa0 += ak >= least0 ? wak : zero;
                    sw0 += ak >= least0 ? wk : zero;
                    sa1 += ak >= least1 ? wak : zero;
                    sw1 += ak >= least1 ? wk : zero;
                }
                double sa[8], sw[8];
                std::memcpy(sa, &sa0, sizeof sa0);
                std::memcpy(sa + 4, &sa1, sizeof sa1);
                std::memcpy(sw, &sw0, sizeof sw0);
                std::memcpy(sw + 4, &sw1, sizeof sw1);
                for (int c = 0; c < 8 && c0 + c < count; ++c)
                    if (sw[c] > 0 && sa[c] * sa[c] > best * sw[c]) {
                        best = sa[c] * sa[c] / sw[c];
                        best_wa = sa[c];
                        best_w = sw[c];
                    }
            }
        }
        if (best_w > 0) d = best_wa / best_w;
    }
    if (!(d > 0)) d = amax;  // no weight anywhere (or weights beyond a double): the largest magnitude
    // d as stored: the f16 nearest the best d, or either f16 beside it where the nearest codes
    // for that one give less error (the three errors in one pass).
    float stored = as_stored_f16(std::min(static_cast<float>(d), 65504.0f));
    if (d > 0) {  // also where d rounds to an f16 0: the smallest subnormal may do better
        const uint16_t bits = float_to_half_bits(stored);
        const float below = bits > 1 ? half_bits_to_float(static_cast<uint16_t>(bits - 1)) : stored;
        const float above = bits < 0x7bff ? half_bits_to_float(static_cast<uint16_t>(bits + 1)) : stored;
        const float h0 = 0.5f * stored, h1 = 0.5f * below, h2 = 0.5f * above;
        // Four values a step in vector types: GCC leaves the plain loop's selects scalar.
        using V4 = float __attribute__((vector_size(16)));
        using M4 = int __attribute__((vector_size(16)));
        V4 s0{}, s1{}, s2{};
        const V4 zero{};
        int i = 0;
        for (; i + 4 <= n; i += 4) {
            V4 xv, wv;
            std::memcpy(&xv, x + i, sizeof xv);
            std::memcpy(&wv, w + i, sizeof wv);
            M4 magnitude;
            std::memcpy(&magnitude, &xv, sizeof magnitude);
            magnitude &= 0x7fffffff;
            V4 a;
            std::memcpy(&a, &magnitude, sizeof a);
            const V4 r0 = a - (a > h0 ? zero + stored : zero), r1 = a - (a > h1 ? zero + below : zero), r2 = a - (a > h2 ? zero + above : zero);
            s0 += wv * r0 * r0;
            s1 += wv * r1 * r1;
            s2 += wv * r2 * r2;
        }
        float e0 = (s0[0] + s0[1]) + (s0[2] + s0[3]), e1 = (s1[0] + s1[1]) + (s1[2] + s1[3]), e2 = (s2[0] + s2[1]) + (s2[2] + s2[3]);
        for (; i < n; ++i) {
            const float a = std::fabs(x[i]);
            const float r0 = a > h0 ? a - stored : a, r1 = a > h1 ? a - below : a, r2 = a > h2 ? a - above : a;
            e0 += w[i] * r0 * r0;
            e1 += w[i] * r1 * r1;
            e2 += w[i] * r2 * r2;
        }
        if (e1 < e0 && e1 <= e2) stored = below;
        else if (e2 < e0 && e2 < e1) stored = above;
    }
    const float half = stored > 0 ? 0.5f * stored : std::numeric_limits<float>::infinity();
#pragma omp simd
    for (int i = 0; i < n; ++i) {
        const int kept = std::fabs(x[i]) > half, negative = x[i] < 0;
        code[i] = static_cast<uint8_t>(1 + kept - 2 * (kept & negative));
    }
    return stored;
}

namespace {

// Fits each block of `block` values with a ternary codebook and an f16 d; `pack` stores it.
template <class Block, int kBlock, class Pack>
void quantize_ternary(const float* x, uint8_t* dst, int64_t n, const float* imp, Pack pack) {
    quantize_blocks<Block, kBlock>(x, dst, n, imp, [&](const float* xb, const float* w, Block& b) {
        uint8_t code[kBlock];
        store_half(b.d, fit_ternary(xb, w, kBlock, code));
        pack(code, b);
    });
}

// Five ternary digits (t0 most significant) as the byte whose fraction b / 256 sits in
// digit sequence t0 t1 t2 t3 t4 in base 3: ceil(v x 256 / 243) for v = sum t_k 3^(4-k).
uint8_t pack_trits(const uint8_t* t, int count) {
    int v = 0;
    for (int k = 0; k < 5; ++k) v = v * 3 + (k < count ? t[k] : 0);
    return static_cast<uint8_t>((v * 256 + 242) / 243);
}

void quantize_tq1_0(const float* x, uint8_t* dst, int64_t n, const float* imp) {
    quantize_ternary<BlockTQ1_0, 256>(x, dst, n, imp, [](const uint8_t* code, BlockTQ1_0& b) {
        uint8_t t[5];
        for (int m = 0; m < 32; ++m) {  // values 32k + m
            for (int k = 0; k < 5; ++k) t[k] = code[32 * k + m];
            b.qs[m] = pack_trits(t, 5);
        }
        for (int m = 0; m < 16; ++m) {  // values 160 + 16k + m
            for (int k = 0; k < 5; ++k) t[k] = code[160 + 16 * k + m];
            b.qs[32 + m] = pack_trits(t, 5);
        }
        for (int m = 0; m < 4; ++m) {  // values 240 + 4k + m, four digits
            for (int k = 0; k < 4; ++k) t[k] = code[240 + 4 * k + m];
            b.qh[m] = pack_trits(t, 4);
        }
    });
}

void quantize_tq2_0(const float* x, uint8_t* dst, int64_t n, const float* imp) {
    quantize_ternary<BlockTQ2_0, 256>(x, dst, n, imp, [](const uint8_t* code, BlockTQ2_0& b) {
        for (int half = 0; half < 2; ++half)  // values 128 half + 32 k + m in bits 2k of byte 32 half + m
            for (int m = 0; m < 32; ++m) {
                const uint8_t* c = code + 128 * half + m;
                b.qs[32 * half + m] = static_cast<uint8_t>(c[0] | c[32] << 2 | c[64] << 4 | c[96] << 6);
            }
    });
}

void quantize_q2_0(const float* x, uint8_t* dst, int64_t n, const float* imp) {
    quantize_ternary<BlockQ2_0, 64>(x, dst, n, imp, [](const uint8_t* code, BlockQ2_0& b) {
        for (int m = 0; m < 16; ++m)  // values 4m + k in bits 2k of byte m
            b.qs[m] = static_cast<uint8_t>(code[4 * m] | code[4 * m + 1] << 2 | code[4 * m + 2] << 4 | code[4 * m + 3] << 6);
    });
}

// Q1_0: the signs are fixed by the values, so d is the only choice. The plain squared error
// is least at d0 = mean |x|, where it is var |x|, and grows as (d - d0)^2. With importance
// weights, d moves toward the importance-weighted mean of |x| (the weighted error's best),
// but no further than raises the plain RMSE by 0.5%: with one free parameter the two aims
// conflict, and the importance matrix should not buy its gain with the rest's accuracy.
void quantize_q1_0(const float* x, uint8_t* dst, int64_t n, const float* imp) {
    BlockQ1_0* b = blocks<BlockQ1_0>(dst);
    for (int64_t i = 0; i < n; i += 128, ++b) {
        // The sums in eight lanes, added in a fixed order (one chain of dependent additions
        // each was most of Q1_0's time).
        double lane_abs[8] = {}, lane_sq[8] = {}, lane_wx[8] = {}, lane_w[8] = {};
        for (int j = 0; j < 128; j += 8)
            for (int l = 0; l < 8; ++l) {
                const double a = std::fabs(x[i + j + l]), w = imp ? imp[i + j + l] : 1.0;
                lane_abs[l] += a;
                lane_sq[l] += a * a;
                lane_wx[l] += w * a;
                lane_w[l] += w;
            }
        auto total = [](const double* s) { return ((s[0] + s[4]) + (s[2] + s[6])) + ((s[1] + s[5]) + (s[3] + s[7])); };
        const double sum_abs = total(lane_abs), sum_sq = total(lane_sq), swx = total(lane_wx), sw = total(lane_w);
        for (int m = 0; m < 16; ++m) {  // value 8m + l's sign in bit l of byte m
            unsigned byte = 0;
            for (int l = 0; l < 8; ++l) byte |= static_cast<unsigned>(x[i + 8 * m + l] >= 0) << l;
            b->qs[m] = static_cast<uint8_t>(byte);
        }
        const double d0 = sum_abs / 128, spread = std::max(0.0, sum_sq / 128 - d0 * d0);
        const double reach = std::sqrt((1.005 * 1.005 - 1) * spread);
        const double weighted = sw > 0 ? swx / sw : d0;
        store_half(b->d, static_cast<float>(d0 + std::clamp(weighted - d0, -reach, reach)));
    }
}

}  // namespace

void register_ternary(TraitsTable& t) {
    using K = ScaleKind;
    add_block_type<BlockTQ1_0>(t, quantize_tq1_0, {{K::F16, offsetof(BlockTQ1_0, d), "d"}});
    add_block_type<BlockTQ2_0>(t, quantize_tq2_0, {{K::F16, offsetof(BlockTQ2_0, d), "d"}});
    add_block_type<BlockQ1_0>(t, quantize_q1_0, {{K::F16, offsetof(BlockQ1_0, d), "d"}});
    add_block_type<BlockQ2_0>(t, quantize_q2_0, {{K::F16, offsetof(BlockQ2_0, d), "d"}});
}

}  // namespace quant::detail
