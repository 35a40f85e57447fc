// Ternary and 1-2 bit formats: TQ1_0, TQ2_0 (values -d, 0, +d), Q1_0 (+-d), Q2_0.
#include <algorithm>
#include <cstdint>
#include <cstring>
#include <cmath>
#include <limits>
#include <stdexcept>
#include <utility>

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
// whose bound (below) could beat it is sorted and scanned: the best k of all. d is then the
// f16 nearest the best real d, or one beside it where the nearest codes give less error.
// Measured against the codebook search it replaced (fit_levels from 5 starts with 3 refits at
// each end of the codebook): 5.8 instead of 13.6 ns a value on TQ1_0 (one thread, bench_quant),
// and less error (test_quant_fits).
float fit_ternary(const float* x, const float* w, int n, uint8_t* code) {
    if (n < 4 || n > 256) throw std::logic_error("fit_ternary: blocks of 4 to 256 values");
    const int buckets = std::min(64, n / 4);
    float amax = 0;
#pragma omp simd reduction(max : amax)
    for (int i = 0; i < n; ++i) amax = std::max(amax, std::fabs(x[i]));
    double d = 0;
    if (amax > 0) {
        const double to_bucket = buckets / static_cast<double>(amax);  // in double: amax may be subnormal
        double bucket_wa[65] = {}, bucket_w[65] = {};
        uint8_t bucket[256];
        int start[66] = {};  // start[j + 1]: how many values bucket j holds, then where it starts
        for (int i = 0; i < n; ++i) {
            const float a = std::fabs(x[i]);
            const int b = static_cast<int>(std::min(static_cast<double>(buckets - 1), a * to_bucket));
            bucket[i] = static_cast<uint8_t>(b);
            bucket_wa[b] += static_cast<double>(w[i]) * a;  // in double, as the scans below: no overflow, no lost small terms
            bucket_w[b] += w[i];
            ++start[b + 1];
        }
        for (int j = 0; j < buckets; ++j) start[j + 1] += start[j];
        // The values by bucket, for the buckets that get scanned below.
        std::pair<float, float> by_bucket[256];
        int fill[65];
        std::copy(start, start + buckets, fill);
        for (int i = 0; i < n; ++i) by_bucket[fill[bucket[i]]++] = {std::fabs(x[i]), w[i]};
        // Sums over the buckets from j up (suffix sums), and the best edge's F.
        // F = A^2 / W is compared as A^2 > best x W (no divisions in the loops).
        double suffix_wa[65] = {}, suffix_w[65] = {};
        double best = 0, best_wa = 0, best_w = 0;
        for (int j = buckets - 1; j >= 0; --j) {
            suffix_wa[j] = suffix_wa[j + 1] + bucket_wa[j];
            suffix_w[j] = suffix_w[j + 1] + bucket_w[j];
            if (suffix_wa[j] * suffix_wa[j] * best_w > best_wa * best_wa * suffix_w[j] || best_w == 0) {
                best_wa = suffix_wa[j];
                best_w = suffix_w[j];
            }
        }
        if (best_w > 0) best = best_wa * best_wa / best_w;
        // Every k whose smallest kept magnitude lies in bucket j: the buckets above it kept
        // whole (A0 = suffix_wa[j + 1], W0 = suffix_w[j + 1]) and the largest of its values, of
        // weight u up to its whole weight U and magnitudes between its edges l and h. Their sum
        // of w |x| is at most h u, and at most the bucket's whole sum S less l (U - u), so F is
        // at most min(A0 + h u, A0 + S - l (U - u))^2 / (W0 + u), whose pieces are convex in u:
        // its largest value is at u = 0, U, or where the two lines cross. A bucket whose bound
        // is no more than the best F so far is passed over; the others are sorted and scanned.
        // The result is the best k of all.
        const double width = static_cast<double>(amax) / buckets;
        for (int j = buckets - 1; j >= 0; --j) {
            if (bucket_w[j] <= 0) continue;
            const double a0 = suffix_wa[j + 1], w0 = suffix_w[j + 1], u = bucket_w[j], sum = bucket_wa[j];
            const double h = (j == buckets - 1 ? amax : width * (j + 1)) * (1 + 1e-6), l = width * j * (1 - 1e-6);
            const double cross = std::clamp((sum - l * u) / (h - l), 0.0, u);
            if (a0 * a0 <= best * w0 && (a0 + sum) * (a0 + sum) <= best * (w0 + u) && (a0 + h * cross) * (a0 + h * cross) <= best * (w0 + cross))
                continue;
            std::pair<float, float>* near = by_bucket + start[j];
            const int count = start[j + 1] - start[j];
            std::sort(near, near + count, [](const auto& p, const auto& q) { return p.first > q.first; });
            double wa = a0, sw = w0;
            for (int k = 0; k < count; ++k) {
                wa += static_cast<double>(near[k].first) * near[k].second;
                sw += near[k].second;
                if (k + 1 < count && near[k + 1].first == near[k].first) continue;  // equal magnitudes go together
                if (sw > 0 && wa * wa > best * sw) {
                    best = wa * wa / sw;
                    best_wa = wa;
                    best_w = sw;
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
        std::fill(b.qs, b.qs + 64, 0);
        for (int i = 0; i < 256; ++i) b.qs[32 * (i / 128) + i % 32] |= static_cast<uint8_t>(code[i] << (2 * ((i % 128) / 32)));
    });
}

void quantize_q2_0(const float* x, uint8_t* dst, int64_t n, const float* imp) {
    quantize_ternary<BlockQ2_0, 64>(x, dst, n, imp, [](const uint8_t* code, BlockQ2_0& b) {
        std::fill(b.qs, b.qs + 16, 0);
        for (int j = 0; j < 64; ++j) b.qs[j / 4] |= static_cast<uint8_t>(code[j] << (2 * (j % 4)));
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
        double sum_abs = 0, sum_sq = 0, swx = 0, sw = 0;
        std::fill(b->qs, b->qs + 16, 0);
        for (int j = 0; j < 128; ++j) {
            const double a = std::fabs(x[i + j]), w = imp ? imp[i + j] : 1.0;
            sum_abs += a;
            sum_sq += a * a;
            swx += w * a;
            sw += w;
            if (x[i + j] >= 0) b->qs[j / 8] |= static_cast<uint8_t>(1u << (j % 8));
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
