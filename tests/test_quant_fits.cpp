// White-box checks of the shared fits (quant/src/fit.h): the lane versions must choose what
// the one-block version chooses, bit for bit, for every search the quantizers use. The pinned
// hashes in test_quant cover whole rows; these cover the searches one sub-block at a time, so
// that a search setting new to a type (Q6_K's Search{6, 0}, Q4_0's Search{1, 1}, Q8_0's
// bound refits) is checked
// against the one-block code rather than only against its own earlier output.
#include <doctest/doctest.h>

#include <cstdint>
#include <algorithm>
#include <cmath>
#include <cstring>
#include <random>
#include <utility>
#include <vector>

#include "fit.h"
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
TEST_CASE("the ternary fit has the exhaustive scan's error, and never more than the codebook search's") {
    static constexpr float kValues[3] = {-1, 0, 1};
    static constexpr uint8_t kCodes[3] = {0, 1, 2};
    const quant::detail::Levels ternary{kValues, kCodes, 3};
    int blocks = 0, below_search = 0, above_exhaustive = 0;
    double ours_total = 0, search_total = 0;
    for (int seed = 0; seed < 3000; ++seed) {
        const SubBlocks b(seed);  // 512 values: as two blocks of 256, or eight of 64
        for (int n : {256, 64}) {
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
                CHECK(e <= es * (1 + 1e-5) + 1e-30);
                above_exhaustive += e > ee * (1 + 1e-5) + 1e-30;  // the f16 beside d is chosen by a float sum
                below_search += e < es * (1 - 1e-6);
                ours_total += e;
                search_total += es;
                ++blocks;
            }
        }
    }
    MESSAGE(blocks << " blocks: below the codebook search's error in " << below_search << ", above the exhaustive scan's in " << above_exhaustive
                   << "; total error " << ours_total / search_total << " of the search's");
    CHECK(above_exhaustive == 0);
    CHECK(below_search > blocks / 10);
}

// Q6_K's scale codes are nudged by up to two (five candidates a sub-block, where other callers
// give three): the pick must be the candidate of least error, its codes the nearest for it,
// and sixteen lanes must pick what two eight-lane calls pick.
TEST_CASE("best_symmetric_codes over five candidate scales picks the one of least error, with its nearest codes, on every path") {
    constexpr int kTrials = 5, n = 16, lo = -32, hi = 31;
    const bool has_avx512 = quant::testing::use_avx512(true);
    int checked = 0, picked_end = 0;
    for (int seed = 0; seed < 1500; ++seed) {
        const SubBlocks b(seed);
        float d[kTrials * 16];
        for (int j = 0; j < 16; ++j) {
            float amax = 0;
            for (int i = 0; i < n; ++i) amax = std::max(amax, std::fabs(b.x[n * j + i]));
            for (int t = 0; t < kTrials; ++t) d[t * 16 + j] = amax / (29.0f + static_cast<float>(t) * 0.75f);  // the last ones clip
        }
        int8_t q16[256], q8[256];
        int pick16[16], pick8[16];
        quant::detail::best_symmetric_codes16(b.x, b.w, n, lo, hi, kTrials, d, q16, pick16);
        quant::testing::use_avx512(false);
        quant::detail::best_symmetric_codes16(b.x, b.w, n, lo, hi, kTrials, d, q8, pick8);
        quant::testing::use_avx512(has_avx512);
        for (int j = 0; j < 16; ++j) {
            CAPTURE(seed);
            CAPTURE(j);
            REQUIRE(pick16[j] == pick8[j]);
            REQUIRE(std::memcmp(q16 + n * j, q8 + n * j, n) == 0);
            if (pick16[j] < 0) continue;  // no error was a number (a zero scale)
            REQUIRE(pick16[j] < kTrials);
            auto error = [&](float dt, const int8_t* q) {
                double e = 0;
                for (int i = 0; i < n; ++i) {
                    const double r = static_cast<double>(b.x[n * j + i]) - static_cast<double>(dt) * q[i];
                    e += b.w[n * j + i] * r * r;
                }
                return e;
            };
            double least = INFINITY;
            for (int t = 0; t < kTrials; ++t) {
                const float dt = d[t * 16 + j];
                int8_t nearest[16];
                for (int i = 0; i < n; ++i) nearest[i] = static_cast<int8_t>(std::clamp(std::nearbyint(b.x[n * j + i] / dt), float(lo), float(hi)));
                least = std::min(least, error(dt, nearest));
            }
            const float dp = d[pick16[j] * 16 + j];
            for (int i = 0; i < n; ++i) {  // the nearest codes for the pick (ties either way)
                const float exact = b.x[n * j + i] / dp;
                CHECK(std::fabs(std::clamp(exact, float(lo), float(hi)) - q16[n * j + i]) <= 0.5f + 1e-4f);
            }
            CHECK(error(dp, q16 + n * j) <= least * (1 + 1e-5) + 1e-30);
            picked_end += pick16[j] == 0 || pick16[j] == kTrials - 1;
            ++checked;
        }
    }
    CHECK(checked > 20000);
    CHECK(picked_end > 0);  // the outer candidates, which three-candidate calls never see, do win
}

TEST_CASE("block_weights: importance x (sigma^2 + x^2)^(1/4), or the square root where asked or forced; sqrt(sigma^2 + x^2) without importance") {
    using quant::detail::block_weights;
    using quant::detail::SizeWeight;
    const float x[6] = {0.0f, 1.5f, -3.0f, 1e-20f, 250.0f, -0.25f}, imp[6] = {1.0f, 2.0f, 0.5f, 3.0f, 1e-3f, 7.0f};
    const float sigma2 = 0.75f;
    float out[6];
    const auto root = [&](int i, double power) { return std::pow(static_cast<double>(sigma2) + static_cast<double>(x[i]) * x[i], power); };
    block_weights(x, imp, 6, sigma2, out);
    for (int i = 0; i < 6; ++i) CHECK(out[i] == doctest::Approx(imp[i] * root(i, 0.25)).epsilon(1e-6));
    block_weights(x, imp, 6, sigma2, out, SizeWeight::SquareRoot);
    for (int i = 0; i < 6; ++i) CHECK(out[i] == doctest::Approx(imp[i] * root(i, 0.5)).epsilon(1e-6));
    for (SizeWeight size : {SizeWeight::FourthRoot, SizeWeight::SquareRoot}) {
        block_weights(x, nullptr, 6, sigma2, out, size);
        for (int i = 0; i < 6; ++i) CHECK(out[i] == doctest::Approx(root(i, 0.5)).epsilon(1e-6));
    }
    {
        const quant::testing::ImportanceSquareRoot forced;
        block_weights(x, imp, 6, sigma2, out);
    }
    for (int i = 0; i < 6; ++i) CHECK(out[i] == doctest::Approx(imp[i] * root(i, 0.5)).epsilon(1e-6));
}
