// The k-quants: super-blocks of 256 values in sub-blocks of 16 or 32, each sub-block with
// its own scale (and minimum) stored in a few bits, scaled again by the block's f16 d (and
// dmin).
#include <algorithm>
#include <cmath>
#include <limits>
#include <stdexcept>

#include "bytes.h"
#include "family.h"
#include "fit.h"

namespace quant::detail {

namespace {


// ---- quantization ------------------------------------------------------------------------
//
// A super-block of 256 is fitted in three steps: each sub-block on its own (scale, and for
// the affine kinds a minimum); those scales quantized against the block's f16 super-scales,
// each weighted by how much the block's error depends on it; then each sub-block's scale
// codes nudged by one either way where that lowers its weighted error, with the codes
// re-derived from the scales as stored (for the affine kinds, the scale or the minimum, one
// at a time). The affine kinds may then refit d and dmin to the codes (refit_super_scales).

constexpr int kSuper = 256;
// Super-blocks fitted together: their sub-blocks sixteen at a time, their super-block scales
// one super-block a lane (eight lanes for up to eight, sixteen beyond: fit_symmetric16).
constexpr int kGroup = 16;

// The super-block scale fits of g super-blocks, one a lane: eight lanes where g <= 8.
inline void fit_super_scales(const float* x, const float* w, int g, int n, int lo, int hi, int8_t* q, float* d) {
    if (g <= 8) fit_symmetric8(x, w, n, lo, hi, q, true, Search{}, d);
    else fit_symmetric16(x, w, n, lo, hi, q, true, Search{}, d);
}

// Affine kinds (Q2_K, Q4_K, Q5_K): value = d x sc x q - dmin x mn. kSteps: the sub-block
// fits' starting scales either side of the obvious one (Search, fit.h).
struct AffineFit {
    float d = 0, dmin = 0;
    uint8_t sc[16] = {}, mn[16] = {};
    uint8_t q[kSuper] = {};
};

// The weighted squared error of an affine super-block's fit, as dequantization forms its values
// (d x sc times q, minus dmin x mn), summed in double.
template <int kSub>
double affine_error(const float* x, const float* w, const AffineFit& f) {
    double err = 0;
    for (int j = 0; j < kSuper / kSub; ++j) {
        const float dl = f.d * static_cast<float>(f.sc[j]), ml = f.dmin * static_cast<float>(f.mn[j]);
        for (int i = 0; i < kSub; ++i) {
            const double e = static_cast<double>(x[j * kSub + i]) - static_cast<double>(dl * static_cast<float>(f.q[j * kSub + i]) - ml);
            err += static_cast<double>(w[j * kSub + i]) * e * e;
        }
    }
    return err;
}

// One sub-block's weighted squared error with scale dl and minimum ml (values dl q - ml), as
// affine_error sums it.
template <int kSub>
double sub_error(const float* x, const float* w, float dl, float ml, const uint8_t* q) {
    double err = 0;
    for (int i = 0; i < kSub; ++i) {
        const double e = static_cast<double>(x[i]) - static_cast<double>(dl * static_cast<float>(q[i]) - ml);
        err += static_cast<double>(w[i]) * e * e;
    }
    return err;
}

// The super-block scales fitted again once every code is fixed: d and dmin by weighted least
// squares over the whole super-block (values d x (sc q) - dmin x mn), stored as f16; then each
// sub-block's scale and minimum codes chosen again among the nine pairs within one of its
// current ones (the corners count here, where d and dmin both moved), with the nearest codes
// for each. Kept where the super-block's error goes down; up to `rounds` times. The fits
// before this choose d from the sub-blocks' own scales, which the codes then follow; the
// refit lets d follow the codes back.
template <int kSub, int kQmax, int kScaleMax>
void refit_super_scales(const float* x, const float* w, int g, AffineFit* f, int rounds) {
    constexpr int kSubs = kSuper / kSub, kPairs = 9;
    double err[kGroup];
    bool active[kGroup] = {};
    for (int b = 0; b < g; ++b) {
        err[b] = affine_error<kSub>(x + b * kSuper, w + b * kSuper, f[b]);
        active[b] = true;
    }
    AffineFit t[kGroup];
    uint8_t trial[16 * kSub];
    for (int round = 0; round < rounds; ++round) {
        bool any = false;
        for (int b = 0; b < g; ++b) {
            t[b] = f[b];
            if (!active[b]) continue;
            const float* xb = x + b * kSuper;
            const float* wb = w + b * kSuper;
            double saa = 0, sac = 0, scc = 0, sxa = 0, sxc = 0;
            for (int j = 0; j < kSubs; ++j) {
                const double c = f[b].mn[j];
                for (int i = 0; i < kSub; ++i) {
                    const double a = static_cast<double>(f[b].sc[j]) * f[b].q[j * kSub + i], wi = wb[j * kSub + i], xi = xb[j * kSub + i];
                    saa += wi * a * a;
                    sac += wi * a * c;
                    scc += wi * c * c;
                    sxa += wi * xi * a;
                    sxc += wi * xi * c;
                }
            }
            const double det = saa * scc - sac * sac;
            const double d = (sxa * scc - sac * sxc) / det, dmin = (sac * sxa - saa * sxc) / det;
            const float d16 = as_stored_f16(static_cast<float>(d)), dmin16 = as_stored_f16(static_cast<float>(dmin)) + 0.0f;  // -0 as +0
            if (!(det > 0) || !(d16 > 0) || !(dmin16 >= 0) || std::isinf(d16) || std::isinf(dmin16) || (d16 == f[b].d && dmin16 == f[b].dmin)) {
                active[b] = false;
                continue;
            }
            t[b].d = d16;
            t[b].dmin = dmin16;
            any = true;
        }
        if (!any) return;
        bool valid[kGroup];
        std::fill(valid, valid + kGroup, true);
        for (int s0 = 0; s0 < g * kSubs;) {
            const int n = g * kSubs - s0 >= 16 ? 16 : 8;
            int s[kPairs][16], m[kPairs][16], pick[16];
            float dl[kPairs][16], ml[kPairs][16];
            for (int p = 0; p < kPairs; ++p)
                for (int k = 0; k < n; ++k) {
                    const AffineFit& tb = t[(s0 + k) / kSubs];
                    const int j = (s0 + k) % kSubs;
                    s[p][k] = std::clamp(tb.sc[j] + p / 3 - 1, 0, kScaleMax);
                    m[p][k] = std::clamp(tb.mn[j] + p % 3 - 1, 0, kScaleMax);
                    dl[p][k] = tb.d * static_cast<float>(s[p][k]);
                    ml[p][k] = -(tb.dmin * static_cast<float>(m[p][k]));
                }
            if (n == 16) best_affine_codes16(x + s0 * kSub, w + s0 * kSub, kSub, kQmax, kPairs, dl[0], ml[0], trial, pick);
            else {
                float dl8[kPairs][8], ml8[kPairs][8];
                half_of(dl[0], kPairs, 0, dl8[0]);
                half_of(ml[0], kPairs, 0, ml8[0]);
                best_affine_codes8(x + s0 * kSub, w + s0 * kSub, kSub, kQmax, kPairs, dl8[0], ml8[0], trial, pick);
            }
            for (int k = 0; k < n; ++k) {
                const unsigned at = static_cast<unsigned>(s0 + k), b = at / kSubs, j = at % kSubs;  // unsigned: GCC's -Warray-bounds
                if (!active[b]) continue;
                if (pick[k] < 0) {
                    valid[b] = false;
                    continue;
                }
                t[b].sc[j] = static_cast<uint8_t>(s[pick[k]][k]);
                t[b].mn[j] = static_cast<uint8_t>(m[pick[k]][k]);
                std::copy(trial + k * kSub, trial + (k + 1) * kSub, t[b].q + j * kSub);
            }
            s0 += n;
        }
        for (int b = 0; b < g; ++b) {
            if (!active[b]) continue;
            const double e = valid[b] ? affine_error<kSub>(x + b * kSuper, w + b * kSuper, t[b]) : err[b];
            if (e < err[b]) {
                err[b] = e;
                f[b] = t[b];
            } else {
                active[b] = false;
            }
        }
    }
}

// Last in the fit (after the super-block refit, where there is one; Q2_K at --effort best also
// before it), each sub-block's scale and minimum codes chosen again among every pair within
// reach.scale of its scale code and reach.min of its minimum code (Q4_K: 91 pairs at +-3 / +-6,
// 153 at +-4 / +-8; Q2_K: 45 at +-2 / +-4, 121 at +-5 / +-5; where the one-step nudges try 5
// and the refit 9), with the nearest codes for each, and kept where its weighted error goes
// down. The error as a function of the two codes has many shallow minima: with d
// and dmin fixed, trying every one of the 4,096 pairs lowered Q4_K's error in the fits'
// weights by 2.2% on rmse.tsv's heavy importance row, and most of that sits a few steps away,
// mostly along the minimum (a walk from the least-squares minimum for each scale code found
// about a third of it). best_affine_pair16 takes the error alone for every pair, then the
// winner's codes in one more pass.
struct Reach {
    int scale = 0, min = 0;
};

template <int kSub, int kQmax, int kScaleMax, Reach kReach>
void wide_repick(const float* x, const float* w, int g, AffineFit* f) {
    constexpr int kSubs = kSuper / kSub, kSideMin = 2 * kReach.min + 1, kPairs = (2 * kReach.scale + 1) * kSideMin;
    static_assert(kPairs <= kMaxPairTrials, "best_affine_pair16 takes up to kMaxPairTrials pairs");
    uint8_t trial[16 * kSub];
    float dl[kPairs * 16], ml[kPairs * 16];
    for (int s0 = 0; s0 < g * kSubs;) {
        const int n = g * kSubs - s0 >= 16 ? 16 : 8;
        int sc0[16], mn0[16], pick[16];
        for (int k = 0; k < n; ++k) {
            sc0[k] = f[(s0 + k) / kSubs].sc[(s0 + k) % kSubs];
            mn0[k] = f[(s0 + k) / kSubs].mn[(s0 + k) % kSubs];
        }
        // Pair t = (scale code sc0 + t / kSideMin - reach, minimum code mn0 + t % kSideMin - reach), clamped.
        auto scale_code = [&](int k, int t) { return std::clamp(sc0[k] + t / kSideMin - kReach.scale, 0, kScaleMax); };
        auto min_code = [&](int k, int t) { return std::clamp(mn0[k] + t % kSideMin - kReach.min, 0, kScaleMax); };
        for (int t = 0; t < kPairs; ++t)
            for (int k = 0; k < n; ++k) {
                const AffineFit& fb = f[(s0 + k) / kSubs];
                dl[t * n + k] = fb.d * static_cast<float>(scale_code(k, t));
                ml[t * n + k] = -(fb.dmin * static_cast<float>(min_code(k, t)));
            }
        if (n == 16) best_affine_pair16(x + s0 * kSub, w + s0 * kSub, kSub, kQmax, kPairs, dl, ml, pick);
        else best_affine_pair8(x + s0 * kSub, w + s0 * kSub, kSub, kQmax, kPairs, dl, ml, pick);
        // Where clamping repeats the pair as it is, an earlier copy can win: compare codes.
        bool moved[16], any = false;
        for (int k = 0; k < n; ++k) {
            moved[k] = pick[k] >= 0 && (scale_code(k, pick[k]) != sc0[k] || min_code(k, pick[k]) != mn0[k]);
            any |= moved[k];
        }
        if (any) {
            float d1[16], m1[16];
            int one[16];
            for (int k = 0; k < n; ++k) {
                const int t = moved[k] ? pick[k] : kReach.scale * kSideMin + kReach.min;  // the pair as it is
                d1[k] = dl[t * n + k];
                m1[k] = ml[t * n + k];
            }
            if (n == 16) best_affine_codes16(x + s0 * kSub, w + s0 * kSub, kSub, kQmax, 1, d1, m1, trial, one);
            else best_affine_codes8(x + s0 * kSub, w + s0 * kSub, kSub, kQmax, 1, d1, m1, trial, one);
            for (int k = 0; k < n; ++k) {
                if (!moved[k] || one[k] < 0) continue;
                AffineFit& fb = f[(s0 + k) / kSubs];
                const int j = (s0 + k) % kSubs, sc = scale_code(k, pick[k]), mn = min_code(k, pick[k]);
                const float* xs = x + (s0 + k) * kSub;
                const float* ws = w + (s0 + k) * kSub;
                const double now = sub_error<kSub>(xs, ws, fb.d * static_cast<float>(fb.sc[j]), fb.dmin * static_cast<float>(fb.mn[j]), fb.q + j * kSub);
                if (sub_error<kSub>(xs, ws, fb.d * static_cast<float>(sc), fb.dmin * static_cast<float>(mn), trial + k * kSub) < now) {
                    fb.sc[j] = static_cast<uint8_t>(sc);
                    fb.mn[j] = static_cast<uint8_t>(mn);
                    std::copy(trial + k * kSub, trial + (k + 1) * kSub, fb.q + j * kSub);
                }
            }
        }
        s0 += n;
    }
}

// Fits g <= kGroup super-blocks (x, w: g x 256 values) into f[0..g): the sub-block fits
// sixteen sub-blocks at a time, the super-block scales one super-block a lane; then a wide
// re-pick within kFirstReach (where set), kRefits rounds of the super-block refit, and a wide
// re-pick within kReach (where set).
template <int kSub, int kQmax, int kScaleMax, int kSteps, int kRefits, Reach kReach = Reach{}, Reach kFirstReach = Reach{}>
void fit_affine_k(const float* x, const float* w, int g, AffineFit* f) {
    constexpr int kSubs = kSuper / kSub;
    float scale[kGroup][kSubs], minimum[kGroup][kSubs], scale_weight[kGroup][kSubs], min_weight[kGroup][kSubs];
    for (int b = 0; b < g; ++b) f[b] = AffineFit{};
    // The g x kSubs sub-blocks lie one after another in x and w (and in scale[0], minimum[0]):
    // sixteen at a time, eight for a rest.
    uint8_t codes[16 * kSub];
    for (int s0 = 0; s0 < g * kSubs;) {
        const int n = g * kSubs - s0 >= 16 ? 16 : 8;
        const float* xs = x + s0 * kSub;
        const float* ws = w + s0 * kSub;
        if (n == 16) fit_affine16(xs, ws, kSub, kQmax, codes, false, true, Search{kSteps, 2}, scale[0] + s0, minimum[0] + s0);
        else fit_affine8(xs, ws, kSub, kQmax, codes, false, true, Search{kSteps, 2}, scale[0] + s0, minimum[0] + s0);
        for (int k = 0; k < n; ++k) std::copy(codes + k * kSub, codes + (k + 1) * kSub, f[(s0 + k) / kSubs].q + (s0 + k) % kSubs * kSub);
        s0 += n;
    }
    for (int b = 0; b < g; ++b) {
        const float* wb = w + b * kSuper;
        for (int j = 0; j < kSubs; ++j) {
            const float* wj = wb + j * kSub;
            scale[b][j] = std::max(scale[b][j], 0.0f);
            minimum[b][j] = -minimum[b][j];
            scale_weight[b][j] = min_weight[b][j] = 0;
            for (int i = 0; i < kSub; ++i) {
                const float qi = f[b].q[j * kSub + i];
                scale_weight[b][j] += wj[i] * qi * qi;
                min_weight[b][j] += wj[i];
            }
        }
    }
    for (int b = g; b < (g <= 8 ? 8 : kGroup); ++b) {  // idle lanes: a copy of the first super-block
        std::copy(scale[0], scale[0] + kSubs, scale[b]);
        std::copy(minimum[0], minimum[0] + kSubs, minimum[b]);
        std::copy(scale_weight[0], scale_weight[0] + kSubs, scale_weight[b]);
        std::copy(min_weight[0], min_weight[0] + kSubs, min_weight[b]);
    }
    int8_t sc[kGroup][kSubs], mn[kGroup][kSubs];
    float d[kGroup], dmin[kGroup];
    fit_super_scales(scale[0], scale_weight[0], g, kSubs, 0, kScaleMax, sc[0], d);
    fit_super_scales(minimum[0], min_weight[0], g, kSubs, 0, kScaleMax, mn[0], dmin);
    // Each sub-block's scale code, then its minimum code, nudged by one either way (one code at
    // a time: the corners never paid off), sixteen sub-blocks at a time across super-blocks
    // as above; the first least error wins, in the order (-1, 0), (0, -1), (0, 0), (0, 1),
    // (1, 0).
    constexpr int kTrials[5][2] = {{-1, 0}, {0, -1}, {0, 0}, {0, 1}, {1, 0}};
    for (int b = 0; b < g; ++b) {
        f[b].d = d[b];
        f[b].dmin = dmin[b];
    }
    uint8_t trial[16 * kSub];
    for (int s0 = 0; s0 < g * kSubs;) {
        const int n = g * kSubs - s0 >= 16 ? 16 : 8;
        int s[5][16], m[5][16], pick[16];
        float dl[5][16], ml[5][16];
        for (int t = 0; t < 5; ++t)
            for (int k = 0; k < n; ++k) {
                const int b = (s0 + k) / kSubs, j = (s0 + k) % kSubs;
                s[t][k] = std::clamp(sc[b][j] + kTrials[t][0], 0, kScaleMax), m[t][k] = std::clamp(mn[b][j] + kTrials[t][1], 0, kScaleMax);
                dl[t][k] = d[b] * static_cast<float>(s[t][k]);
                ml[t][k] = -(dmin[b] * static_cast<float>(m[t][k]));
            }
        if (n == 16) best_affine_codes16(x + s0 * kSub, w + s0 * kSub, kSub, kQmax, 5, dl[0], ml[0], trial, pick);
        else {
            float dl8[5][8], ml8[5][8];  // eight candidates a trial
            half_of(dl[0], 5, 0, dl8[0]);
            half_of(ml[0], 5, 0, ml8[0]);
            best_affine_codes8(x + s0 * kSub, w + s0 * kSub, kSub, kQmax, 5, dl8[0], ml8[0], trial, pick);
        }
        for (int k = 0; k < n; ++k) {
            if (pick[k] < 0) continue;
            AffineFit& fb = f[(s0 + k) / kSubs];
            const int j = (s0 + k) % kSubs;
            fb.sc[j] = static_cast<uint8_t>(s[pick[k]][k]);
            fb.mn[j] = static_cast<uint8_t>(m[pick[k]][k]);
            std::copy(trial + k * kSub, trial + (k + 1) * kSub, fb.q + j * kSub);
        }
        s0 += n;
    }
    if constexpr (kFirstReach.scale > 0 || kFirstReach.min > 0) wide_repick<kSub, kQmax, kScaleMax, kFirstReach>(x, w, g, f);
    refit_super_scales<kSub, kQmax, kScaleMax>(x, w, g, f, kRefits);
    if constexpr (kReach.scale > 0 || kReach.min > 0) wide_repick<kSub, kQmax, kScaleMax, kReach>(x, w, g, f);
}

// Symmetric kinds (Q3_K, Q6_K): value = d x sc x q, sc and q signed.
struct SymmetricFit {
    float d = 0;
    int8_t sc[16] = {};
    int8_t q[kSuper] = {};
};

// kSearch: the sub-block fits' search (fit.h); kNudge: how far each sub-block's scale code is
// nudged either way once the super-block's d is fixed.
//
// Q6_K evaluates 13 starting scales at each end of the code range without refits (Search{6, 0}:
// the largest value sent to the end code and up to 3 codes either side, in half-code steps) and nudges codes by up to
// two; from one start with two refits and a nudge of one, as before, it was at 0.990 and 0.957
// of ggml's importance-weighted RMSE on rmse.tsv's imatrix rows, and is at 0.943 and 0.931, at
// 1.6x the fit's time (7.1 against 4.4 ns a value on one thread here). The 6-bit codes make
// the error a finely broken function of the scale, so trying more scales finds lower minima;
// two refits from each of fewer starts cost more for less. Q3_K's 3-bit codes gain nothing
// from it (its relaxed bound, bench_quant_bound, is 0.98 of ggml's).
template <int kSub, int kLo, int kHi, int kScaleLo, int kScaleHi, Search kSearch, int kNudge>
void fit_symmetric_k(const float* x, const float* w, int g, SymmetricFit* f) {
    constexpr int kSubs = kSuper / kSub;
    float scale[kGroup][kSubs], scale_weight[kGroup][kSubs];
    for (int b = 0; b < g; ++b) {
        const float* xb = x + b * kSuper;
        const float* wb = w + b * kSuper;
        f[b] = SymmetricFit{};
        if constexpr (kSubs == 16) fit_symmetric16(xb, wb, kSub, kLo, kHi, f[b].q, false, kSearch, scale[b]);
        else
            for (int j = 0; j < kSubs; j += 8) fit_symmetric8(xb + j * kSub, wb + j * kSub, kSub, kLo, kHi, f[b].q + j * kSub, false, kSearch, scale[b] + j);
        for (int j = 0; j < kSubs; ++j) {
            scale_weight[b][j] = 0;
            for (int i = 0; i < kSub; ++i) scale_weight[b][j] += wb[j * kSub + i] * static_cast<float>(f[b].q[j * kSub + i] * f[b].q[j * kSub + i]);
        }
    }
    for (int b = g; b < (g <= 8 ? 8 : kGroup); ++b) {  // idle lanes: a copy of the first super-block
        std::copy(scale[0], scale[0] + kSubs, scale[b]);
        std::copy(scale_weight[0], scale_weight[0] + kSubs, scale_weight[b]);
    }
    int8_t sc[kGroup][kSubs];
    float d[kGroup];
    fit_super_scales(scale[0], scale_weight[0], g, kSubs, kScaleLo, kScaleHi, sc[0], d);
    // Each sub-block's scale code nudged by up to kNudge either way, eight or sixteen
    // sub-blocks at a time; the first least error wins (codes in ascending order).
    constexpr int kLanes = kSubs == 16 ? 16 : 8, kTrials = 2 * kNudge + 1;
    static_assert(kTrials <= 8, "best_symmetric_codes8/16 take up to 8 candidates");
    int8_t trial[kLanes * kSub];
    for (int b = 0; b < g; ++b) {
        f[b].d = d[b];
        for (int j0 = 0; j0 < kSubs; j0 += kLanes) {
            int s[kTrials][kLanes], pick[kLanes];
            float dl[kTrials][kLanes];
            for (int t = 0; t < kTrials; ++t)
                for (int k = 0; k < kLanes; ++k) {
                    s[t][k] = std::clamp(sc[b][j0 + k] + t - kNudge, kScaleLo, kScaleHi);
                    dl[t][k] = d[b] * static_cast<float>(s[t][k]);
                }
            if constexpr (kLanes == 16) best_symmetric_codes16(x + b * kSuper, w + b * kSuper, kSub, kLo, kHi, kTrials, dl[0], trial, pick);
            else best_symmetric_codes8(x + b * kSuper + j0 * kSub, w + b * kSuper + j0 * kSub, kSub, kLo, kHi, kTrials, dl[0], trial, pick);
            for (int k = 0; k < kLanes; ++k) {
                if (pick[k] < 0) continue;
                f[b].sc[j0 + k] = static_cast<int8_t>(s[pick[k]][k]);
                std::copy(trial + k * kSub, trial + (k + 1) * kSub, f[b].q + (j0 + k) * kSub);
            }
        }
    }
}

// Quantizes a row sixteen super-blocks at a time: fit(x, w, g, fits) for g <= 16 super-blocks
// and their weights (block_weights), then pack(fit, block) for each.
template <class Block, class Fit, class FitGroup, class Pack>
void quantize_super_blocks(const float* x, uint8_t* dst, int64_t n, const float* importance, FitGroup fit, Pack pack) {
    const float sigma2 = mean_square(x, n);
    Block* out = blocks<Block>(dst);
    float w[kGroup * kSuper];
    Fit f[kGroup];
    for (int64_t i = 0; i < n; i += kGroup * kSuper) {
        const int g = static_cast<int>(std::min<int64_t>(kGroup, (n - i) / kSuper));
        for (int b = 0; b < g; ++b)
            block_weights(x + i + b * kSuper, importance ? importance + i + b * kSuper : nullptr, kSuper, sigma2, w + b * kSuper);
        fit(x + i, w, g, f);
        for (int b = 0; b < g; ++b) pack(f[b], *out++);
    }
}

// The inverse of scale_min_k4: eight 6-bit scales and minimums into 12 bytes.
void pack_scale_min_k4(const uint8_t* sc, const uint8_t* mn, uint8_t* q) {
    for (int j = 0; j < 12; ++j) q[j] = 0;
    for (int j = 0; j < 8; ++j) {
        if (j < 4) {
            q[j] |= sc[j];
            q[j + 4] |= mn[j];
        } else {
            q[j + 4] = static_cast<uint8_t>((sc[j] & 0x0f) | (mn[j] & 0x0f) << 4);
            q[j - 4] |= static_cast<uint8_t>((sc[j] >> 4) << 6);
            q[j] |= static_cast<uint8_t>((mn[j] >> 4) << 6);
        }
    }
}

// The affine k-quants' searches (fit_affine_k's kSteps and kRefits): by default, starting
// scales either side of the obvious one (Q2_K, Q4_K, Q5_K) and Q5_K's refit rounds; at
// --effort best, and for Q4_K and Q5_K with an importance matrix (quantize_q4_k,
// quantize_q5_k), Q4_K's and Q5_K's starting scales and every one's refit rounds.
constexpr int kQ2Steps = 1, kQ4Steps = 1, kQ5Steps = 2, kQ5Refits = 1, kBestSteps = 8, kBestRefits = 2;
// The wide re-pick (wide_repick): Q4_K's scale codes +-3 and minimum codes +-6 by default,
// +-4 and +-8 with an importance matrix and at --effort best; Q2_K's (4-bit codes) +-2 and +-4
// by default, and at --effort best, after the default's and the refit, +-5 and +-5.
constexpr Reach kQ4Reach{3, 6}, kQ4BestReach{4, 8}, kQ2Reach{2, 4}, kQ2BestReach{5, 5};

// kRefits: rounds of the super-block refit, none by default, two at --effort best. Alone (before
// the re-pick) they took weighted RMSE from 0.982 / 0.922 to 0.973 / 0.902 of ggml's on
// rmse.tsv's importance rows but the KL divergence up (tiny model's Q2_K imatrix 0.889 -> 0.905
// of llama.cpp's file, trained model's 0.937 -> 0.953): at 2 bits the figure follows how much
// of the source's projection the weights keep more than their error (README: Unbiased
// scales). More starting scales raised Q2_K's error. The wide re-pick (kReach; at best
// kFirstReach first, so that best starts from the default's result and the refit and second
// re-pick, which keep only what lowers a super-block's error, never raise it) lowers both:
// 0.970 / 0.905 and the tiny model's Q2_K imatrix 0.878, the trained model's 0.927 (README:
// Q2_K: the wide re-pick).
template <int kRefits, Reach kReach, Reach kFirstReach = Reach{}>
void quantize_q2_k(const float* x, uint8_t* dst, int64_t n, const float* imp) {
    quantize_super_blocks<BlockQ2_K, AffineFit>(x, dst, n, imp, fit_affine_k<16, 3, 15, kQ2Steps, kRefits, kReach, kFirstReach>, [](const AffineFit& f, BlockQ2_K& b) {
        store_half(b.d, f.d);
        store_half(b.dmin, f.dmin);
        for (int j = 0; j < 16; ++j) b.scales[j] = static_cast<uint8_t>(f.sc[j] | f.mn[j] << 4);
        for (int h = 0; h < 2; ++h)  // value 128h + 32s + l: bits 2s of qs[32h + l]
            for (int l = 0; l < 32; ++l) {
                unsigned byte = 0;
                for (int s = 0; s < 4; ++s) byte |= static_cast<unsigned>(f.q[128 * h + 32 * s + l]) << (2 * s);
                b.qs[32 * h + l] = static_cast<uint8_t>(byte);
            }
    });
}

void quantize_q3_k(const float* x, uint8_t* dst, int64_t n, const float* imp) {
    quantize_super_blocks<BlockQ3_K, SymmetricFit>(x, dst, n, imp, fit_symmetric_k<16, -4, 3, -32, 31, Search{1, 2}, 1>, [](const SymmetricFit& f, BlockQ3_K& b) {
        store_half(b.d, f.d);
        std::fill(b.scales, b.scales + 12, 0);
        for (int i = 0; i < 16; ++i) {
            const int s = f.sc[i] + 32;
            b.scales[i < 8 ? i : i - 8] |= static_cast<uint8_t>(i < 8 ? (s & 0x0f) : (s & 0x0f) << 4);
            b.scales[8 + i % 4] |= static_cast<uint8_t>((s >> 4) << (2 * (i / 4)));
        }
        // L = q + 4 of value 128h + 32s + l: its low 2 bits at bit 2s of qs[32h + l], bit 2 at
        // bit 4h + s of hmask[l] (each byte built in a register: 1.1x on Q3_K)
        for (int l = 0; l < 32; ++l) {
            unsigned high = 0;
            for (int h = 0; h < 2; ++h) {
                unsigned low = 0;
                for (int s = 0; s < 4; ++s) {
                    const unsigned code = static_cast<unsigned>(f.q[128 * h + 32 * s + l] + 4);
                    low |= (code & 3) << (2 * s);
                    high |= (code >> 2) << (4 * h + s);
                }
                b.qs[32 * h + l] = static_cast<uint8_t>(low);
            }
            b.hmask[l] = static_cast<uint8_t>(high);
        }
    });
}

// kSteps, kRefits: the sub-block fits' starting scales either side of the obvious one, and
// the rounds of the super-block refit. Q5_K's default is {2, 1} (was {0, 0}): weighted RMSE
// 0.999 -> 0.963 and 0.977 -> 0.941 of ggml's on rmse.tsv's importance rows, the tiny model's
// Q5_K_M / Q5_K_S imatrix KL divergence 0.905 / 0.932 -> 0.811 / 0.818 of llama.cpp's file,
// the trained model's Q5_K_M 0.976 -> 0.950; the fit 5.4 -> 12 ns a value (one thread), the
// Q5_K_M mix of the 984 MB model 1.7 -> 3.1 s on two threads. Q4_K's is {1, 0}. With an
// importance matrix both take best's {8, 2} (quantize_q4_k, quantize_q5_k).
template <class Block, int kQmax, int kSteps, int kRefits, Reach kReach = Reach{}>
void quantize_k4(const float* x, uint8_t* dst, int64_t n, const float* imp) {
    quantize_super_blocks<Block, AffineFit>(x, dst, n, imp, fit_affine_k<32, kQmax, 63, kSteps, kRefits, kReach>, [](const AffineFit& f, Block& b) {
        store_half(b.d, f.d);
        store_half(b.dmin, f.dmin);
        pack_scale_min_k4(f.sc, f.mn, b.scales);
        if constexpr (kQmax == 31) std::fill(b.qh, b.qh + 32, 0);
        for (int c = 0; c < 4; ++c)
            for (int l = 0; l < 32; ++l) {
                const uint8_t lo = f.q[64 * c + l], hi = f.q[64 * c + 32 + l];
                b.qs[32 * c + l] = static_cast<uint8_t>((lo & 0x0f) | (hi & 0x0f) << 4);
                if constexpr (kQmax == 31) b.qh[l] |= static_cast<uint8_t>((lo >> 4) << (2 * c) | (hi >> 4) << (2 * c + 1));
            }
    });
}

// Q4_K with an importance matrix searches as --effort best does ({8, 2}) and weighs values by
// importance x (sigma2 + x^2)^(1/4) as the other types do (it took ggml's square root before
// 2026-12-05): weighted RMSE 0.999 / 0.993 -> 0.978 / 0.954 of ggml's on rmse.tsv's importance
// rows, the trained model's Q4_K_M / Q3_K_M imatrix KL divergence 1.017 / 0.987 -> 0.964 /
// 0.968 of llama.cpp's files, the tiny model's Q4_K_M / Q4_K_S / Q3_K_M imatrix 0.990 / 1.028
// / 0.984 -> 0.983 / 0.992 / 0.976. Either change alone moved the tiny model's figures up
// (the fourth root alone, Q4_K_M imatrix 0.990 -> 1.006; {8, 2} alone with the square root,
// the whole mix at --effort best, Q4_K_S imatrix 1.028 -> 1.058), the trained model's down
// (1.001, 0.986). Without one it keeps {1, 0}: more starts and the refit there (Q4_K's alone)
// raised the tiny model's Q4_K_M / Q4_K_S from 0.967 / 0.965 to 1.004 / 0.998 of llama.cpp's
// files.
// Both end with the wide re-pick (2026-12-06; kQ4Reach, kQ4BestReach): weighted RMSE 0.978 /
// 0.954 -> 0.974 / 0.949 of ggml's on the importance rows; KL divergence, tiny model, Q4_K_M /
// Q4_K_S / Q3_K_M 0.967 / 0.965 / 1.003 -> 0.927 / 0.959 / 0.981, with an importance matrix
// 0.984 / 0.992 / 0.976 -> 0.950 / 0.988 / 0.962, trained Q4_K_M / Q3_K_M imatrix 0.964 / 0.968
// -> 0.953 / 0.971; the fit 7.5 -> 22 ns a value without an importance matrix, 27 -> 47 with
// one (one thread). Smaller reaches (+-1 / +-3, +-2 / +-4) put the tiny model's Q3_K_M or
// Q4_K_S imatrix above llama.cpp's (1.018, 1.039); from +-2 / +-6 up every Q4_K mix was below.
void quantize_q4_k(const float* x, uint8_t* dst, int64_t n, const float* imp) {
    if (imp) quantize_k4<BlockQ4_K, 15, kBestSteps, kBestRefits, kQ4BestReach>(x, dst, n, imp);
    else quantize_k4<BlockQ4_K, 15, kQ4Steps, 0, kQ4Reach>(x, dst, n, imp);
}

// Q5_K with an importance matrix searches as --effort best does ({8, 2}): weighted RMSE 0.963
// / 0.941 -> 0.949 / 0.910 of ggml's on rmse.tsv's importance rows, the trained model's
// Q5_K_M imatrix KL divergence 0.950 -> 0.927 of llama.cpp's file, the tiny model's Q5_K_M /
// Q5_K_S imatrix 0.811 / 0.818 -> 0.785 / 0.799; the fit 11 -> 22 ns a value (bench_quant,
// one thread), which llama.cpp's own search with importance (18 s against 11 s without, Q5_K_M
// of the 984 MB model) leaves room for: that mix 3.04 -> 4.59 s against its 18.72. Without one
// it keeps {2, 1}: at --effort best that mix took 5.19 s against llama.cpp's 11.14 (2.15x).
void quantize_q5_k(const float* x, uint8_t* dst, int64_t n, const float* imp) {
    if (imp) quantize_k4<BlockQ5_K, 31, kBestSteps, kBestRefits>(x, dst, n, imp);
    else quantize_k4<BlockQ5_K, 31, kQ5Steps, kQ5Refits>(x, dst, n, imp);
}

void quantize_q6_k(const float* x, uint8_t* dst, int64_t n, const float* imp) {
    quantize_super_blocks<BlockQ6_K, SymmetricFit>(x, dst, n, imp, fit_symmetric_k<16, -32, 31, -128, 127, Search{6, 0}, 2>, [](const SymmetricFit& f, BlockQ6_K& b) {
        store_half(b.d, f.d);
        std::copy(f.sc, f.sc + 16, b.scales);
        for (int h = 0; h < 2; ++h)
            for (int l = 0; l < 32; ++l) {
                int L[4];
                for (int k = 0; k < 4; ++k) L[k] = f.q[128 * h + 32 * k + l] + 32;
                b.ql[64 * h + l] = static_cast<uint8_t>((L[0] & 0x0f) | (L[2] & 0x0f) << 4);
                b.ql[64 * h + l + 32] = static_cast<uint8_t>((L[1] & 0x0f) | (L[3] & 0x0f) << 4);
                b.qh[32 * h + l] = static_cast<uint8_t>((L[0] >> 4) | (L[1] >> 4) << 2 | (L[2] >> 4) << 4 | (L[3] >> 4) << 6);
            }
    });
}

template <int kSub, int kQmax, int kScaleMax, int kSteps>
void refit_errors(const float* x, const float* w, int g, int rounds, double* before, double* after) {
    AffineFit f[kGroup];
    fit_affine_k<kSub, kQmax, kScaleMax, kSteps, 0>(x, w, g, f);
    for (int b = 0; b < g; ++b) before[b] = affine_error<kSub>(x + b * kSuper, w + b * kSuper, f[b]);
    refit_super_scales<kSub, kQmax, kScaleMax>(x, w, g, f, rounds);
    for (int b = 0; b < g; ++b) after[b] = affine_error<kSub>(x + b * kSuper, w + b * kSuper, f[b]);
}

template <int kSub, int kQmax, int kScaleMax, int kSteps, int kRefits, Reach kReach, Reach kFirstReach = Reach{}>
void affine_repick(const float* x, const float* w, int g, AffineBlockForTest* before, AffineBlockForTest* after, int reach[2]) {
    AffineFit f[kGroup];
    auto out = [&](AffineBlockForTest* o) {
        for (int b = 0; b < g; ++b) {
            o[b].d = f[b].d;
            o[b].dmin = f[b].dmin;
            std::copy(f[b].sc, f[b].sc + 16, o[b].sc);
            std::copy(f[b].mn, f[b].mn + 16, o[b].mn);
            std::copy(f[b].q, f[b].q + kSuper, o[b].q);
        }
    };
    fit_affine_k<kSub, kQmax, kScaleMax, kSteps, kRefits, Reach{}, kFirstReach>(x, w, g, f);
    out(before);
    wide_repick<kSub, kQmax, kScaleMax, kReach>(x, w, g, f);
    out(after);
    reach[0] = kReach.scale;
    reach[1] = kReach.min;
}

}  // namespace

void affine_repick_for_test(int qmax, bool best, const float* x, const float* w, int g, AffineBlockForTest* before, AffineBlockForTest* after, int reach[2]) {
    if (g < 1 || g > kGroup) throw std::invalid_argument("affine_repick_for_test: 1 to 16 super-blocks");
    switch (qmax) {
    case 3:
        if (best) return affine_repick<16, 3, 15, kQ2Steps, kBestRefits, kQ2BestReach, kQ2Reach>(x, w, g, before, after, reach);
        return affine_repick<16, 3, 15, kQ2Steps, 0, kQ2Reach>(x, w, g, before, after, reach);
    case 15:
        if (best) return affine_repick<32, 15, 63, kBestSteps, kBestRefits, kQ4BestReach>(x, w, g, before, after, reach);
        return affine_repick<32, 15, 63, kQ4Steps, 0, kQ4Reach>(x, w, g, before, after, reach);
    default: throw std::invalid_argument("affine_repick_for_test: qmax 3 (Q2_K) or 15 (Q4_K)");
    }
}

void refit_errors_for_test(int qmax, const float* x, const float* w, int g, int rounds, double* before, double* after) {
    if (g < 1 || g > kGroup) throw std::invalid_argument("refit_errors_for_test: 1 to 16 super-blocks");
    switch (qmax) {
    case 3: return refit_errors<16, 3, 15, kQ2Steps>(x, w, g, rounds, before, after);
    case 15: return refit_errors<32, 15, 63, kQ4Steps>(x, w, g, rounds, before, after);
    case 31: return refit_errors<32, 31, 63, kQ5Steps>(x, w, g, rounds, before, after);
    default: throw std::invalid_argument("refit_errors_for_test: qmax 3 (Q2_K), 15 (Q4_K) or 31 (Q5_K)");
    }
}

void register_kquants(TraitsTable& t) {
    using K = ScaleKind;
    add_block_type<BlockQ2_K>(t, quantize_q2_k<0, kQ2Reach>, {{K::F16, offsetof(BlockQ2_K, d), "d"}, {K::F16, offsetof(BlockQ2_K, dmin), "dmin"}});
    add_block_type<BlockQ3_K>(t, quantize_q3_k, {{K::F16, offsetof(BlockQ3_K, d), "d"}});
    add_block_type<BlockQ4_K>(t, quantize_q4_k, {{K::F16, offsetof(BlockQ4_K, d), "d"}, {K::F16, offsetof(BlockQ4_K, dmin), "dmin"}});
    add_block_type<BlockQ5_K>(t, quantize_q5_k, {{K::F16, offsetof(BlockQ5_K, d), "d"}, {K::F16, offsetof(BlockQ5_K, dmin), "dmin"}});
    add_block_type<BlockQ6_K>(t, quantize_q6_k, {{K::F16, offsetof(BlockQ6_K, d), "d"}});
    set_efforts(t, TypeId::Q2_K, nullptr, quantize_q2_k<kBestRefits, kQ2BestReach, kQ2Reach>);
    // With importance weights Q4_K's and Q5_K's default is their best (quantize_q4_k, quantize_q5_k).
    set_efforts(t, TypeId::Q4_K, nullptr, quantize_k4<BlockQ4_K, 15, kBestSteps, kBestRefits, kQ4BestReach>, {.best_with = false});
    set_efforts(t, TypeId::Q5_K, nullptr, quantize_k4<BlockQ5_K, 31, kBestSteps, kBestRefits>, {.best_with = false});
    set_fitted_scales(t, {TypeId::Q2_K, TypeId::Q3_K, TypeId::Q4_K, TypeId::Q5_K, TypeId::Q6_K});
    // The activation format of dot products (kernels/ quantizes to it): read, not written here.
    add_block_type<BlockQ8_K>(t, nullptr, {{K::F32, offsetof(BlockQ8_K, d), "d"}});
}

}  // namespace quant::detail
