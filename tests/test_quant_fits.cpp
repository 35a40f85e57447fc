// White-box checks of the shared fits (quant/src/fit.h): the lane versions must choose what
// the one-block version chooses, bit for bit, for every search the quantizers use. The pinned
// hashes in test_quant cover whole rows; these cover the searches one sub-block at a time, so
// that a search setting new to a type (Q6_K's Search{6, 0}, Q4_0's Search{1, 1}, Q8_0's
// bound refits, Q4_1's and Q5_1's Search{1, 1} without importance) is checked
// against the one-block code rather than only against its own earlier output.
#include <doctest/doctest.h>

#include <cstdint>
#include <algorithm>
#include <cmath>
#include <limits>
#include <cstring>
#include <random>
#include <stdexcept>
#include <utility>
#include <vector>

#include "fit.h"
#include "grid_fit.h"
#include "quant/quant.h"

namespace {

using quant::detail::Search;

// Sixteen blocks of up to 32 values: normal or Student-t values at a tiny, ordinary or large
// scale, some blocks half zeros or with repeated values, weights 1 or log-normal.
struct SubBlocks {
    float x[512], w[512];
    explicit SubBlocks(int seed) {
        std::mt19937 rng(static_cast<uint32_t>(seed));
        std::normal_distribution<float> normal(0, 1);
        std::student_t_distribution<float> heavy(3);
        std::lognormal_distribution<float> lognormal(0, 1);
        const float scale = seed % 7 == 0 ? 1e-6f : seed % 11 == 0 ? 1e3f : 0.02f;
        for (int i = 0; i < 512; ++i) {
            x[i] = scale * (seed % 2 ? normal(rng) : heavy(rng));
            if (seed % 13 == 0 && i % 16 < 8) x[i] = 0;
            if (seed % 17 == 0 && i % 5 == 0) x[i] = scale;
            w[i] = seed % 3 == 0 ? 1.0f : lognormal(rng);
        }
    }
};

}  // namespace

TEST_CASE("the symmetric fits on eight and sixteen lanes choose the one-block fit's scale and codes, for each search the quantizers use") {
    struct Kind {
        const char* what;
        int n, lo, hi;
        bool f16_scale;
        Search search;
    };
    const Kind kinds[] = {
        {"q6_K sub-blocks", 16, -32, 31, false, Search{6, 0}},
        {"q3_K sub-blocks", 16, -4, 3, false, Search{1, 2}},
        {"q6_K sub-blocks before 2026-12-04", 16, -32, 31, false, Search{0, 2}},
        {"q4_0 blocks", 32, -8, 7, true, Search{1, 1}},
        {"q4_0 blocks before 2026-12-04, q5_0's", 32, -8, 7, true, Search{1, 2}},
        {"q8_0 blocks with importance", 32, -127, 127, true, Search{3, 0, true}},
        {"q8_0 blocks, fast effort", 32, -127, 127, true, Search{0, 0, true}},
        {"q8_0 blocks, best effort", 32, -127, 127, true, Search{10, 0, true}},
        {"q8_0 blocks before 2026-12-05", 32, -127, 127, true, Search{}},
        {"bound refits, 4-bit codes", 32, -8, 7, true, Search{2, 0, true}},
        {"bound refits, float scales", 16, -32, 31, false, Search{3, 0, true}},
    };
    const bool has_avx512 = quant::testing::use_avx512(true);
    for (const Kind& k : kinds) {
        CAPTURE(k.what);
        const int n = k.n;
        int differ = 0, fits = 0;
        for (int seed = 0; seed < 1500; ++seed) {
            const SubBlocks b(seed);
            int8_t one[512], eight[512], sixteen[512], narrow16[512];
            float d8[16], d16[16], dn16[16];
            quant::detail::fit_symmetric8(b.x, b.w, n, k.lo, k.hi, eight, k.f16_scale, k.search, d8);
            quant::detail::fit_symmetric8(b.x + 8 * n, b.w + 8 * n, n, k.lo, k.hi, eight + 8 * n, k.f16_scale, k.search, d8 + 8);
            quant::detail::fit_symmetric16(b.x, b.w, n, k.lo, k.hi, sixteen, k.f16_scale, k.search, d16);
            quant::testing::use_avx512(false);  // the sixteen-block call as two eight-block ones
            quant::detail::fit_symmetric16(b.x, b.w, n, k.lo, k.hi, narrow16, k.f16_scale, k.search, dn16);
            quant::testing::use_avx512(has_avx512);
            for (int j = 0; j < 16; ++j) {
                const float d = quant::detail::fit_symmetric(b.x + n * j, b.w + n * j, n, k.lo, k.hi, one + n * j, k.f16_scale, k.search);
                ++fits;
                bool same = true;
                for (const float* other : {d8, d16, dn16}) same = same && std::memcmp(&d, &other[j], sizeof d) == 0;
                for (const int8_t* other : {eight, sixteen, narrow16}) same = same && std::memcmp(one + n * j, other + n * j, static_cast<size_t>(n)) == 0;
                if (!same) ++differ;
            }
        }
        CHECK_MESSAGE(differ == 0, differ << " of " << fits << " block fits differ from the one-block fit");
    }
    if (!has_avx512) MESSAGE("this CPU has no AVX-512: the sixteen-lane path was compared as two eight-lane calls only");
}

// The affine fits (k-quant sub-blocks with a non-positive offset, legacy blocks with f16 scale
// and offset) on eight and sixteen lanes: the one-block fit's scale, offset and codes.
TEST_CASE("the affine fits on eight and sixteen lanes choose the one-block fit's scale, offset and codes, for each search the quantizers use") {
    struct Kind {
        const char* what;
        int n, hi;
        bool f16_params, non_positive_offset;
        Search search;
    };
    const Kind kinds[] = {
        {"q2_K sub-blocks", 16, 3, false, true, Search{1, 2}},
        {"q4_K sub-blocks", 32, 15, false, true, Search{1, 2}},
        {"q5_K sub-blocks", 32, 31, false, true, Search{2, 2}},
        {"q5_K sub-blocks before 2026-12-05", 32, 31, false, true, Search{0, 2}},
        {"q4_K sub-blocks, best effort", 32, 15, false, true, Search{8, 2}},
        {"q5_K sub-blocks, best effort", 32, 31, false, true, Search{8, 2}},
        {"q4_1 blocks with importance", 32, 15, true, false, Search{}},
        {"q4_1 blocks without importance", 32, 15, true, false, Search{1, 1}},
        {"q5_1 blocks without importance", 32, 31, true, false, Search{1, 1}},
    };
    const bool has_avx512 = quant::testing::use_avx512(true);
    for (const Kind& k : kinds) {
        CAPTURE(k.what);
        const int n = k.n;
        int differ = 0, fits = 0;
        for (int seed = 0; seed < 1000; ++seed) {
            const SubBlocks b(seed);
            uint8_t one[512], eight[512], sixteen[512], narrow16[512];
            float d8[16], m8[16], d16[16], m16[16], dn16[16], mn16[16];
            quant::detail::fit_affine8(b.x, b.w, n, k.hi, eight, k.f16_params, k.non_positive_offset, k.search, d8, m8);
            quant::detail::fit_affine8(b.x + 8 * n, b.w + 8 * n, n, k.hi, eight + 8 * n, k.f16_params, k.non_positive_offset, k.search, d8 + 8, m8 + 8);
            quant::detail::fit_affine16(b.x, b.w, n, k.hi, sixteen, k.f16_params, k.non_positive_offset, k.search, d16, m16);
            quant::testing::use_avx512(false);
            quant::detail::fit_affine16(b.x, b.w, n, k.hi, narrow16, k.f16_params, k.non_positive_offset, k.search, dn16, mn16);
            quant::testing::use_avx512(has_avx512);
            for (int j = 0; j < 16; ++j) {
                float d = 0, m = 0;
                quant::detail::fit_affine(b.x + n * j, b.w + n * j, n, k.hi, one + n * j, d, m, k.f16_params, k.non_positive_offset, k.search);
                ++fits;
                bool same = true;
                for (const float* other : {d8, d16, dn16}) same = same && std::memcmp(&d, &other[j], sizeof d) == 0;
                for (const float* other : {m8, m16, mn16}) same = same && std::memcmp(&m, &other[j], sizeof m) == 0;
                for (const uint8_t* other : {eight, sixteen, narrow16}) same = same && std::memcmp(one + n * j, other + n * j, static_cast<size_t>(n)) == 0;
                if (!same) ++differ;
            }
        }
        CHECK_MESSAGE(differ == 0, differ << " of " << fits << " block fits differ from the one-block fit");
    }
}

// The codebook fits (IQ4_NL's blocks with an f16 scale, IQ4_XS's sub-blocks with a float one)
// on eight and sixteen lanes: the one-block fit's scale and level indices, from their starts
// (a third step to larger scales since 2026-12-05) and the default ones.
TEST_CASE("the codebook fits on eight and sixteen lanes choose the one-block fit's scale and levels, from the IQ4 types' starts and the default ones") {
    static constexpr float kValues[16] = {-127, -104, -83, -65, -49, -35, -22, -10, 1, 13, 25, 38, 53, 69, 89, 113};
    static constexpr uint8_t kCodes[16] = {0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15};
    const quant::detail::Levels iq4{kValues, kCodes, 16};
    struct Kind {
        const char* what;
        bool f16_scale;
        quant::detail::LevelStarts starts;
    };
    const Kind kinds[] = {
        {"iq4_nl blocks", true, {3, 2}},
        {"iq4_nl blocks before 2026-12-05", true, {2, 2}},
        {"iq4_xs sub-blocks", false, {3, 2}},
        {"iq4_xs sub-blocks before 2026-12-05", false, {2, 2}},
    };
    const bool has_avx512 = quant::testing::use_avx512(true);
    int start_mattered = 0;
    for (const Kind& k : kinds) {
        CAPTURE(k.what);
        int differ = 0, fits = 0;
        for (int seed = 0; seed < 1500; ++seed) {
            const SubBlocks b(seed);
            uint8_t one[512], eight[512], sixteen[512], narrow16[512], two_starts[32];
            float d8[16], d16[16], dn16[16];
            quant::detail::fit_levels8(b.x, b.w, 32, iq4, eight, k.f16_scale, d8, k.starts);
            quant::detail::fit_levels8(b.x + 256, b.w + 256, 32, iq4, eight + 256, k.f16_scale, d8 + 8, k.starts);
            quant::detail::fit_levels16(b.x, b.w, 32, iq4, sixteen, k.f16_scale, d16, k.starts);
            quant::testing::use_avx512(false);  // the sixteen-block call as two eight-block ones
            quant::detail::fit_levels16(b.x, b.w, 32, iq4, narrow16, k.f16_scale, dn16, k.starts);
            quant::testing::use_avx512(has_avx512);
            for (int j = 0; j < 16; ++j) {
                const float d = quant::detail::fit_levels(b.x + 32 * j, b.w + 32 * j, 32, iq4, one + 32 * j, k.f16_scale, k.starts);
                ++fits;
                bool same = true;
                for (const float* other : {d8, d16, dn16}) same = same && std::memcmp(&d, &other[j], sizeof d) == 0;
                for (const uint8_t* other : {eight, sixteen, narrow16}) same = same && std::memcmp(one + 32 * j, other + 32 * j, 32) == 0;
                if (!same) ++differ;
                if (k.starts.larger == 3) start_mattered += quant::detail::fit_levels(b.x + 32 * j, b.w + 32 * j, 32, iq4, two_starts, k.f16_scale, {2, 2}) != d;
            }
        }
        CHECK_MESSAGE(differ == 0, differ << " of " << fits << " block fits differ from the one-block fit");
    }
    // The third start is taken on some blocks (else the comparison above would not cover it).
    CHECK(start_mattered > 0);
    MESSAGE(start_mattered << " of the fits from the IQ4 types' starts chose another scale than from two starts each way");
    if (!has_avx512) MESSAGE("this CPU has no AVX-512: the sixteen-lane path was compared as two eight-lane calls only");
}

// The super-block refit keeps a round only where the super-block's weighted error (as
// dequantization forms the values) goes down: called directly on groups of 1 to 16
// super-blocks (odd counts take the eight-lane path for the last sub-blocks of Q4_K and Q5_K),
// no super-block may come out worse, and most come out better. Rounds that would raise the
// error are few (without the rule, 1.3-1.5% of these Q4_K and Q5_K super-blocks came out
// worse, 2 of Q2_K's), hence the many groups.
TEST_CASE("the k-quant super-block refit never raises a super-block's weighted error (Q2_K, Q4_K, Q5_K, direct)") {
    std::mt19937 rng(11);
    std::normal_distribution<float> normal(0, 1);
    std::student_t_distribution<float> heavy(3);
    std::lognormal_distribution<float> lognormal(0, 1);
    std::vector<float> x(16 * 256), w(16 * 256);
    for (const int qmax : {3, 15, 31}) {
        CAPTURE(qmax);
        int lower = 0, blocks = 0, worse = 0;
        for (int group = 0; group < 1200; ++group) {
            const int g = 1 + group % 16;
            const float scale = group % 5 == 0 ? 1e-4f : 0.02f;
            for (int i = 0; i < g * 256; ++i) {
                x[i] = scale * (group % 2 ? normal(rng) : heavy(rng));
                w[i] = group % 3 == 0 ? 1.0f : lognormal(rng);
            }
            double before[16], after[16];
            quant::detail::refit_errors_for_test(qmax, x.data(), w.data(), g, 2, before, after);
            for (int b = 0; b < g; ++b) {
                worse += after[b] > before[b];
                lower += after[b] < before[b];
                ++blocks;
            }
        }
        CHECK(worse == 0);
        CHECK(lower > blocks / 2);
    }
    CHECK_THROWS_AS(quant::detail::refit_errors_for_test(7, x.data(), w.data(), 1, 1, nullptr, nullptr), std::invalid_argument);
}

// Q2_K's best effort is its default fit (its wide re-pick included) followed by two rounds of
// the super-block refit (kquants.cpp, refit_super_scales), which keeps a round only where the
// super-block's weighted error goes down, and a wider re-pick, which keeps a sub-block's new
// pair only where its error goes down: no super-block may come out worse than the default's,
// in the weights the fits use (block_weights with the row's mean square), and best must find
// something.
TEST_CASE("the k-quant super-block refit never raises a super-block's weighted error (Q2_K best against default)") {
    constexpr int kCols = 2816, kRows = 6;
    std::mt19937 rng(7);
    std::normal_distribution<float> normal(0, 1);
    std::student_t_distribution<float> heavy(3);
    std::lognormal_distribution<float> lognormal(0, 1);
    std::vector<float> x(kRows * kCols), imp(kCols);
    for (int i = 0; i < kRows * kCols; ++i) x[i] = 0.02f * (i / kCols % 2 ? heavy(rng) : normal(rng));
    for (float& v : imp) v = lognormal(rng);
    const gguf::TypeId type = gguf::TypeId::Q2_K;
    const size_t row_bytes = quant::row_bytes(type, kCols);
    int lower = 0, blocks = 0;
    for (const bool weighted : {false, true}) {
        CAPTURE(weighted);
        std::vector<uint8_t> plain(kRows * row_bytes), best(kRows * row_bytes);
        const std::span<const float> importance = weighted ? std::span<const float>(imp) : std::span<const float>();
        quant::quantize(type, x, kCols, importance, plain, 0, quant::Effort::Default);
        quant::quantize(type, x, kCols, importance, best, 0, quant::Effort::Best);
        std::vector<float> yp(kRows * kCols), yb(kRows * kCols);
        quant::dequantize(type, plain, yp);
        quant::dequantize(type, best, yb);
        for (int r = 0; r < kRows; ++r) {
            const float* xr = x.data() + r * kCols;
            const float sigma2 = quant::detail::mean_square(xr, kCols);
            for (int b0 = 0; b0 < kCols; b0 += 256) {
                float w[256];
                quant::detail::block_weights(xr + b0, weighted ? imp.data() + b0 : nullptr, 256, sigma2, w);
                double ep = 0, eb = 0;
                for (int i = 0; i < 256; ++i) {
                    const double dp = static_cast<double>(xr[b0 + i]) - yp[r * kCols + b0 + i], db = static_cast<double>(xr[b0 + i]) - yb[r * kCols + b0 + i];
                    ep += w[i] * dp * dp;
                    eb += w[i] * db * db;
                }
                CAPTURE(r);
                CAPTURE(b0);
                CHECK(eb <= ep * (1 + 1e-9));
                lower += eb < ep;
                ++blocks;
            }
        }
    }
    CHECK(lower > blocks / 2);
}

// Search::bound_refits judges each start's refit by its codes' error at the refit scale and
// takes the nearest codes for the scale it keeps: never more weighted error (in exact
// arithmetic) than any start's own nearest codes, the one ggml's Q8_0 rounding takes among them.
TEST_CASE("a search with bound refits never has more error than its starting scales' nearest codes") {
    constexpr int n = 32, lo = -127, hi = 127;
    int checked = 0, lower = 0;
    for (int seed = 0; seed < 1500; ++seed) {
        const SubBlocks b(seed);
        for (int j = 0; j < 16; ++j) {
            const float* x = b.x + n * j;
            const float* w = b.w + n * j;
            auto error = [&](float d, const int8_t* q) {
                double e = 0;
                for (int i = 0; i < n; ++i) {
                    const double r = static_cast<double>(x[i]) - static_cast<double>(d) * q[i];
                    e += static_cast<double>(w[i]) * r * r;
                }
                return e;
            };
            int8_t q[n];
            const float d = quant::detail::fit_symmetric(x, w, n, lo, hi, q, true, Search{3, 0, true});
            float xmax = 0;
            for (int i = 0; i < n; ++i)
                if (std::fabs(x[i]) > std::fabs(xmax)) xmax = x[i];
            if (xmax == 0) continue;
            for (int step = -3; step <= 3; ++step) {  // the starts: xmax sent to -127 - 0.5 step
                const float ds = quant::detail::as_stored_f16(xmax / (-127.0f - 0.5f * static_cast<float>(step)));
                if (ds == 0 || !std::isfinite(1.0f / ds)) continue;
                int8_t qs[n];
                for (int i = 0; i < n; ++i) qs[i] = static_cast<int8_t>(std::clamp(std::nearbyint(x[i] / ds), -127.0f, 127.0f));
                CAPTURE(seed);
                CAPTURE(j);
                CAPTURE(step);
                const double mine = error(d, q), start = error(ds, qs);
                REQUIRE(mine <= start * (1 + 1e-5) + 1e-30);
                ++checked;
                lower += step == 0 && mine < start * (1 - 1e-3);
            }
        }
    }
    MESSAGE(checked << " starts checked; below the largest-to-127 start's error by more than 0.1% in " << lower << " of 24,000 blocks");
    CHECK(lower > 1000);  // the refits do find lower error
}

// fit_ternary keeps the k largest magnitudes for the k that an exhaustive scan would pick (its
// buckets only skip what cannot win), with d the f16 of least error beside the best real d; the
// generic codebook search (fit_levels) it replaced on TQ1_0, TQ2_0 and Q2_0 finds a local best.
// The formats' blocks are of 256 and 64 values; the fit takes 4 to 256.
TEST_CASE("the ternary fit has the exhaustive scan's error, and never more than the codebook search's") {
    static constexpr float kValues[3] = {-1, 0, 1};
    static constexpr uint8_t kCodes[3] = {0, 1, 2};
    const quant::detail::Levels ternary{kValues, kCodes, 3};
    int blocks = 0, below_search = 0, above_exhaustive = 0;
    double ours_total = 0, search_total = 0;
    for (int seed = 0; seed < 3000; ++seed) {
        const SubBlocks b(seed);  // 512 values: as two blocks of 256, or eight of 64
        // (On the first 300 seeds also blocks of 100, 24, 5 and 4: bucket counts that are no
        // power of two, lanes past a bucket's values, a single bucket, a tail past whole fours.)
        for (int n : {256, 64, 100, 24, 5, 4}) {
            if (n != 256 && n != 64 && seed >= 300) continue;
            for (int at = 0; at + n <= 512; at += n) {
                const float* x = b.x + at;
                const float* w = b.w + at;
                auto error = [&](float d, const uint8_t* code) {
                    double e = 0;
                    for (int i = 0; i < n; ++i) {
                        const double r = static_cast<double>(x[i]) - static_cast<double>(d) * (code[i] - 1);
                        e += static_cast<double>(w[i]) * r * r;
                    }
                    return e;
                };
                uint8_t ours[256], search[256], exhaustive[256];
                const float d = quant::detail::fit_ternary(x, w, n, ours);
                const float ds = quant::detail::fit_levels(x, w, n, ternary, search, true);
                // Exhaustive: every k of the magnitudes sorted, in double; then f16 and nearest codes.
                std::vector<std::pair<double, double>> aw;
                for (int i = 0; i < n; ++i) aw.push_back({std::fabs(x[i]), w[i]});
                std::sort(aw.begin(), aw.end(), [](const auto& p, const auto& q) { return p.first > q.first; });
                double wa = 0, sw = 0, best = -1, de = 0;
                for (int k = 0; k < n; ++k) {
                    wa += aw[k].first * aw[k].second;
                    sw += aw[k].second;
                    if (k + 1 < n && aw[k + 1].first == aw[k].first) continue;
                    if (sw > 0 && wa * wa / sw > best) best = wa * wa / sw, de = wa / sw;
                }
                const float dstored = quant::detail::as_stored_f16(static_cast<float>(de));
                for (int i = 0; i < n; ++i)
                    exhaustive[i] = static_cast<uint8_t>(dstored > 0 && std::fabs(x[i]) > 0.5f * dstored ? (x[i] < 0 ? 0 : 2) : 1);
                const double e = error(d, ours), es = error(ds, search), ee = error(dstored, exhaustive);
                CAPTURE(seed);
                CAPTURE(n);
                CAPTURE(at);
                above_exhaustive += e > ee * (1 + 1e-5) + 1e-30;  // the f16 beside d is chosen by a float sum
                // The codebook search only on the formats' blocks: on 4 or 5 values of f16's
                // subnormal range the f16 steps are coarse enough that another k whose f16 d
                // rounds better can win (by 0.01-0.9%, in 9 of the 69,000 blocks of 4 and 5).
                if (n != 64 && n != 256) continue;
                CHECK(e <= es * (1 + 1e-5) + 1e-30);
                below_search += e < es * (1 - 1e-6);
                ours_total += e;
                search_total += es;
                ++blocks;
            }
        }
    }
    MESSAGE(blocks << " blocks of 64 and 256: below the codebook search's error in " << below_search << "; total error " << ours_total / search_total
                   << " of the search's; above the exhaustive scan's in " << above_exhaustive << " of all sizes");
    CHECK(above_exhaustive == 0);
    CHECK(below_search > blocks / 10);
}

// A best_*_codes16 call over `trials` candidates (d[t * 16 + j], m[t * 16 + j]: block j's t-th
// scale and offset; m all 0 for the symmetric codes), on sixteen lanes and as two eight-lane
// calls: both must pick the same, the pick must be a candidate of least error, and its
// codes the nearest for it. Returns the blocks checked; counts the picks for which
// special(pick) holds into `special_picks`.
template <class Code, class Call, class Special>
int check_best_codes(const SubBlocks& b, int n, int lo, int hi, int trials, const float* d, const float* m, Call call, Special special,
                     int& special_picks) {
    const bool has_avx512 = quant::testing::use_avx512(true);
    Code q16[512], q8[512];
    int pick16[16], pick8[16], checked = 0;
    call(q16, pick16);
    quant::testing::use_avx512(false);
    call(q8, pick8);
    quant::testing::use_avx512(has_avx512);
    for (int j = 0; j < 16; ++j) {
        CAPTURE(j);
        REQUIRE(pick16[j] == pick8[j]);
        REQUIRE(std::memcmp(q16 + n * j, q8 + n * j, static_cast<size_t>(n)) == 0);
        if (pick16[j] < 0) continue;  // no error was a number (a zero scale)
        REQUIRE(pick16[j] < trials);
        auto error = [&](float dt, float mt, const Code* q) {
            double e = 0;
            for (int i = 0; i < n; ++i) {
                const double r = static_cast<double>(b.x[n * j + i]) - (static_cast<double>(dt) * q[i] + mt);
                e += b.w[n * j + i] * r * r;
            }
            return e;
        };
        double least = INFINITY;
        for (int t = 0; t < trials; ++t) {
            const float dt = d[t * 16 + j], mt = m[t * 16 + j];
            Code nearest[32];
            for (int i = 0; i < n; ++i) nearest[i] = static_cast<Code>(std::clamp(std::nearbyint((b.x[n * j + i] - mt) / dt), float(lo), float(hi)));
            least = std::min(least, error(dt, mt, nearest));
        }
        const float dp = d[pick16[j] * 16 + j], mp = m[pick16[j] * 16 + j];
        for (int i = 0; i < n; ++i) {  // the nearest codes for the pick (ties either way)
            const float exact = (b.x[n * j + i] - mp) / dp;
            CHECK(std::fabs(std::clamp(exact, float(lo), float(hi)) - q16[n * j + i]) <= 0.5f + 1e-4f);
        }
        CHECK(error(dp, mp, q16 + n * j) <= least * (1 + 1e-5) + 1e-30);
        special_picks += special(pick16[j]);
        ++checked;
    }
    return checked;
}

namespace {

// side x side candidate (scale, offset) pairs for each of 16 affine blocks of n values (codes
// 0..hi; d[t * 16 + j], m[t * 16 + j]): scales and offsets a little either side of the ones
// that span the block, in steps of scale_step codes and offset_step of the offset.
void affine_candidates(const SubBlocks& b, int n, int hi, int side, float scale_step, float offset_step, float* d, float* m) {
    for (int j = 0; j < 16; ++j) {
        float lo = 0, top = 0;
        for (int i = 0; i < n; ++i) {
            lo = std::min(lo, b.x[n * j + i]);
            top = std::max(top, b.x[n * j + i]);
        }
        for (int t = 0; t < side * side; ++t) {
            d[t * 16 + j] = (top - lo) / (static_cast<float>(hi) + scale_step * static_cast<float>(t / side - side / 2));
            m[t * 16 + j] = lo * (1.0f + offset_step * static_cast<float>(t % side - side / 2));
        }
    }
}

}  // namespace

// The k-quant super-block refit re-picks each sub-block's (scale, minimum) codes among nine
// pairs (kquants.cpp, refit_super_scales): best_affine_codes over nine candidates, more than
// the eight it took before.
TEST_CASE("best_affine_codes over nine candidate (scale, offset) pairs picks one of least error, with its nearest codes, on every path") {
    constexpr int kTrials = 9, n = 32, hi = 31;
    int checked = 0, ninth = 0;
    for (int seed = 0; seed < 1000; ++seed) {
        CAPTURE(seed);
        const SubBlocks b(seed);
        float d[kTrials * 16], m[kTrials * 16];
        affine_candidates(b, n, hi, 3, 0.6f, 0.05f, d, m);
        checked += check_best_codes<uint8_t>(b, n, 0, hi, kTrials, d, m, [&](uint8_t* q, int* pick) {
            quant::detail::best_affine_codes16(b.x, b.w, n, hi, kTrials, d, m, q, pick);
        }, [](int pick) { return pick == kTrials - 1; }, ninth);
    }
    CHECK(checked > 10000);
    CHECK(ninth > 0);  // the ninth candidate does win
}

// Q4_K's wide re-pick (kquants.cpp, wide_repick) takes best_affine_pair16's pick among 91 or
// 153 (scale, minimum) pairs, then that pair's codes: the pick must be best_affine_codes16's
// where that can choose (16 candidates or fewer), the same on sixteen lanes and on two calls
// of eight, and one of least error among 169.
TEST_CASE("best_affine_pair picks best_affine_codes' candidate, the same on every path, and one of least error among 169") {
    constexpr int n = 32, hi = 15, kPairs = 169;
    const bool has_avx512 = quant::testing::use_avx512(true);
    int checked = 0, beyond16 = 0;
    float d[kPairs * 16], m[kPairs * 16];
    for (int seed = 0; seed < 400; ++seed) {
        const SubBlocks b(seed);
        affine_candidates(b, n, hi, 13, 0.3f, 0.02f, d, m);
        for (int t = 0; seed % 5 == 0 && t < kPairs; t += 7) d[t * 16 + 3] = 0;  // zero scales among block 3's candidates
        CAPTURE(seed);
        for (int trials : {9, 16, kPairs}) {
            CAPTURE(trials);
            int wide[16], narrow[16], codes_pick[16];
            quant::detail::best_affine_pair16(b.x, b.w, n, hi, trials, d, m, wide);
            quant::testing::use_avx512(false);
            quant::detail::best_affine_pair16(b.x, b.w, n, hi, trials, d, m, narrow);
            quant::testing::use_avx512(has_avx512);
            for (int j = 0; j < 16; ++j) REQUIRE(wide[j] == narrow[j]);
            if (trials <= 16) {
                uint8_t q[512];
                quant::detail::best_affine_codes16(b.x, b.w, n, hi, trials, d, m, q, codes_pick);
                for (int j = 0; j < 16; ++j) REQUIRE(wide[j] == codes_pick[j]);
                continue;
            }
            for (int j = 0; j < 16; ++j) {
                CAPTURE(j);
                REQUIRE(wide[j] >= 0);
                REQUIRE(wide[j] < trials);
                auto error = [&](int t) {  // with the nearest codes
                    const float dt = d[t * 16 + j], mt = m[t * 16 + j];
                    double e = 0;
                    for (int i = 0; i < n; ++i) {
                        const float c = dt == 0 ? 0.0f : std::clamp(std::nearbyint((b.x[n * j + i] - mt) / dt), 0.0f, float(hi));
                        const double r = static_cast<double>(b.x[n * j + i]) - (static_cast<double>(dt) * c + mt);
                        e += b.w[n * j + i] * r * r;
                    }
                    return e;
                };
                double least = INFINITY;
                for (int t = 0; t < trials; ++t) least = std::min(least, error(t));
                CHECK(error(wide[j]) <= least * (1 + 1e-5) + 1e-30);
                beyond16 += wide[j] >= 16;
                ++checked;
            }
        }
    }
    CHECK(checked == 400 * 16);
    CHECK(beyond16 > 1000);  // the later candidates do win
}

// The wide re-pick (Q2_K's and Q4_K's) keeps d and dmin and gives each sub-block the pair of
// least error within its reach of the pair it had (with the nearest codes for it), never more
// error than before.
TEST_CASE("the wide re-pick (Q2_K, Q4_K): each sub-block's pair the least within its reach, its codes the nearest, no error added") {
    std::mt19937 rng(20261206u);
    std::normal_distribution<float> normal(0, 1);
    std::student_t_distribution<float> heavy(3);
    std::lognormal_distribution<float> lognormal(0, 1);
    std::vector<float> x(16 * 256), w(16 * 256);
    for (const int qmax : {3, 15}) {
        CAPTURE(qmax);
        const int sub = qmax == 3 ? 16 : 32, subs = 256 / sub, scale_max = qmax == 3 ? 15 : 63;
        int checked = 0, moved = 0, clamped = 0;
        for (int round = 0; round < 24; ++round) {
            CAPTURE(round);
            const int g = 1 + round % 16;
            for (size_t i = 0; i < x.size(); ++i) {
                x[i] = 0.02f * (round % 2 ? normal(rng) : heavy(rng)) + (round % 3 == 0 ? 0.01f : 0.0f);  // some rows off centre
                w[i] = round % 4 == 0 ? 1.0f : lognormal(rng);
            }
            for (bool best : {false, true}) {
                CAPTURE(best);
                quant::detail::AffineBlockForTest before[16], after[16];
                int reach[2];
                quant::detail::affine_repick_for_test(qmax, best, x.data(), w.data(), g, before, after, reach);
                for (int b = 0; b < g; ++b) {
                    REQUIRE(after[b].d == before[b].d);
                    REQUIRE(after[b].dmin == before[b].dmin);
                    const float d = after[b].d, dmin = after[b].dmin;
                    for (int j = 0; j < subs; ++j) {
                        CAPTURE(b);
                        CAPTURE(j);
                        const float* xs = x.data() + 256 * b + sub * j;
                        const float* ws = w.data() + 256 * b + sub * j;
                        auto error = [&](int sc, int mn, const uint8_t* q) {  // q nullptr: the nearest codes
                            const float dl = d * static_cast<float>(sc), ml = dmin * static_cast<float>(mn);
                            double e = 0;
                            for (int i = 0; i < sub; ++i) {
                                const float c = q ? q[i] : dl == 0 ? 0.0f : std::clamp(std::nearbyint((xs[i] + ml) / dl), 0.0f, float(qmax));
                                const double r = static_cast<double>(xs[i]) - (static_cast<double>(dl) * c - ml);
                                e += ws[i] * r * r;
                            }
                            return e;
                        };
                        const double was = error(before[b].sc[j], before[b].mn[j], before[b].q + sub * j);
                        const double now = error(after[b].sc[j], after[b].mn[j], after[b].q + sub * j);
                        CHECK(now <= was);
                        double least = INFINITY;
                        for (int ds = -reach[0]; ds <= reach[0]; ++ds)
                            for (int dm = -reach[1]; dm <= reach[1]; ++dm)
                                least = std::min(least, error(std::clamp(before[b].sc[j] + ds, 0, scale_max), std::clamp(before[b].mn[j] + dm, 0, scale_max), nullptr));
                        CHECK(now <= least * (1 + 1e-5) + 1e-30);
                        const float dl = d * static_cast<float>(after[b].sc[j]), ml = dmin * static_cast<float>(after[b].mn[j]);
                        for (int i = 0; i < sub && dl > 0; ++i)  // the nearest codes (ties either way)
                            CHECK(std::fabs(std::clamp((xs[i] + ml) / dl, 0.0f, float(qmax)) - after[b].q[sub * j + i]) <= 0.5f + 1e-4f);
                        moved += after[b].sc[j] != before[b].sc[j] || after[b].mn[j] != before[b].mn[j];
                        clamped += before[b].sc[j] + reach[0] > scale_max || before[b].sc[j] < reach[0] || before[b].mn[j] + reach[1] > scale_max ||
                                   before[b].mn[j] < reach[1];
                        ++checked;
                    }
                }
            }
        }
        MESSAGE("wide re-pick, qmax " << qmax << ": " << moved << " of " << checked << " sub-blocks took another pair, " << clamped << " reach past a code's ends");
        CHECK(checked == 2 * subs * (1 + 2 + 3 + 4 + 5 + 6 + 7 + 8 + 9 + 10 + 11 + 12 + 13 + 14 + 15 + 16 + 1 + 2 + 3 + 4 + 5 + 6 + 7 + 8));
        CHECK(moved > checked / 20);
        CHECK(clamped > checked / 20);  // the clamped windows are exercised
    }
}

// Q6_K's scale codes are nudged by up to two (five candidates a sub-block, where other callers
// give three): the pick must be the candidate of least error, its codes the nearest for it,
// and sixteen lanes must pick what two eight-lane calls pick.
TEST_CASE("best_symmetric_codes over five candidate scales picks the one of least error, with its nearest codes, on every path") {
    constexpr int kTrials = 5, n = 16, lo = -32, hi = 31;
    int checked = 0, picked_end = 0;
    for (int seed = 0; seed < 1500; ++seed) {
        CAPTURE(seed);
        const SubBlocks b(seed);
        float d[kTrials * 16];
        const float m[kTrials * 16] = {};
        for (int j = 0; j < 16; ++j) {
            float amax = 0;
            for (int i = 0; i < n; ++i) amax = std::max(amax, std::fabs(b.x[n * j + i]));
            for (int t = 0; t < kTrials; ++t) d[t * 16 + j] = amax / (29.0f + static_cast<float>(t) * 0.75f);  // the last ones clip
        }
        const auto call = [&](int8_t* q, int* pick) { quant::detail::best_symmetric_codes16(b.x, b.w, n, lo, hi, kTrials, d, q, pick); };
        checked += check_best_codes<int8_t>(b, n, lo, hi, kTrials, d, m, call, [](int pick) { return pick == 0 || pick == kTrials - 1; }, picked_end);
    }
    CHECK(checked > 20000);
    CHECK(picked_end > 0);  // the outer candidates, which three-candidate calls never see, do win
}

TEST_CASE("block_weights: importance x (sigma^2 + x^2)^(1/4), or the square root where forced; sqrt(sigma^2 + x^2) without importance") {
    using quant::detail::block_weights;
    const float x[6] = {0.0f, 1.5f, -3.0f, 1e-20f, 250.0f, -0.25f}, imp[6] = {1.0f, 2.0f, 0.5f, 3.0f, 1e-3f, 7.0f};
    const float sigma2 = 0.75f;
    float out[6];
    const auto root = [&](int i, double power) { return std::pow(static_cast<double>(sigma2) + static_cast<double>(x[i]) * x[i], power); };
    block_weights(x, imp, 6, sigma2, out);
    for (int i = 0; i < 6; ++i) CHECK(out[i] == doctest::Approx(imp[i] * root(i, 0.25)).epsilon(1e-6));
    block_weights(x, nullptr, 6, sigma2, out);
    for (int i = 0; i < 6; ++i) CHECK(out[i] == doctest::Approx(root(i, 0.5)).epsilon(1e-6));
    {
        const quant::testing::ImportanceSquareRoot forced;
        block_weights(x, imp, 6, sigma2, out);
    }
    for (int i = 0; i < 6; ++i) CHECK(out[i] == doctest::Approx(imp[i] * root(i, 0.5)).epsilon(1e-6));
}

// IQ1's ternary search starts each span from the best fit of its values to the levels
// dl (-1 + s), dl s, dl (1 + s) without the grid (quant/src/grid_fit.cpp, ternary_start): a
// sweep over the n + 1 assignments that the nearest levels take as dl grows. Its scale, with
// the nearest levels, has no more weighted error than any scale of a dense scan, on spans
// like IQ1_S's (32 values, one shift) and IQ1_M's (16 values, a shift per 8), and of 24 and 8
// (the lanes computed past n), including zeros, ties and zero weights.
TEST_CASE("IQ1's ternary start: no scale of a dense scan fits the three levels better than the sweep's, for any shift pattern") {
    std::mt19937 rng(31);
    std::normal_distribution<float> normal(0, 1);
    std::lognormal_distribution<float> lognormal(0, 1);
    auto error = [](const float* a, const float* w, int n, int k, bool shared, int pattern, double dl) {
        double e = 0;
        for (int i = 0; i < n; ++i) {
            const double sh = (shared ? pattern == 1 : (pattern >> (i / k) & 1)) ? -0.125 : 0.125;
            const double best = std::min({std::fabs(a[i] - dl * (-1 + sh)), std::fabs(a[i] - dl * sh), std::fabs(a[i] - dl * (1 + sh))});
            e += w[i] * best * best;
        }
        return e;
    };
    int spans = 0, beaten = 0;
    for (int trial = 0; trial < 400; ++trial) {
        const bool shared = trial % 2 == 0;
        // IQ1_S's 32 and IQ1_M's 16, and on every fifth trial 24 and 8 (lanes past n unused)
        const int n = trial % 5 == 1 ? (shared ? 24 : 8) : shared ? 32 : 16, k = 8;
        float a[32], w[32];
        for (int i = 0; i < n; ++i) {
            a[i] = trial % 7 == 3 ? static_cast<float>(static_cast<int>(normal(rng) * 2)) : normal(rng) / std::max(0.3f, std::fabs(normal(rng)));
            w[i] = trial % 5 == 4 && i % 3 == 0 ? 0.0f : lognormal(rng);
        }
        if (trial % 11 == 5) a[0] = a[1] = 0;
        float dl = -1;
        const int pattern = quant::detail::ternary_start_for_test(a, w, n, shared, dl);
        CAPTURE(trial);
        REQUIRE(dl > 0);
        const double ours = error(a, w, n, k, shared, pattern, dl);
        float amax = 0;
        for (int i = 0; i < n; ++i) amax = std::max(amax, std::fabs(a[i]));
        double scanned = std::numeric_limits<double>::infinity();
        for (int p = 0; p < (shared ? 2 : 1 << (n / k)); ++p)  // IQ1_M: two groups, four patterns
            for (int s = 1; s <= 4000; ++s) scanned = std::min(scanned, error(a, w, n, k, shared, p, 3.0 * amax * s / 4000));
        CHECK(ours <= scanned * (1 + 1e-6) + 1e-12);
        ++spans;
        if (ours < scanned * (1 - 1e-6)) ++beaten;
    }
    MESSAGE(spans << " spans; the sweep below the 4,000-scale scan on " << beaten);
    float unused = 0;
    CHECK_THROWS_AS(quant::detail::ternary_start_for_test(nullptr, nullptr, 40, true, unused), std::invalid_argument);
    CHECK_THROWS_AS(quant::detail::ternary_start_for_test(nullptr, nullptr, 32, false, unused), std::invalid_argument);
}
