#include "fit.h"

#include <algorithm>
#include <array>
#include <cmath>
#include <cstring>
#include <limits>
#include <stdexcept>
#include <type_traits>

#include "quant/quant.h"

namespace quant::detail {

namespace {

inline float weight(const float* w, int i) { return w ? w[i] : 1.0f; }

// Starting scales: the largest value sent to the end code +- steps x kSpacing codes; from
// each, rounds of (least-squares refit, code reassignment) (Search in fit.h). Measured on
// ../shared/ref/quant (bench_quant, the rmse.tsv test): 2 x 0.5 is within 0.1% of the
// quality of 9 x 0.1 at under a third of the time.
constexpr float kSpacing = 0.5f;
constexpr Search kDefaultSearch;

// Clamps a scale so that its f16 form stays finite.
inline float finite_f16(float d) { return d < -65504.0f ? -65504.0f : d > 65504.0f ? 65504.0f : d; }

// x / d, as x times a reciprocal computed once where that is finite; for scales so small
// that 1 / d overflows (2^-128 is an MXFP4 scale), dividing keeps 0 / d at 0, not NaN.
struct Divider {
    explicit Divider(float d) : d_(d), inverse_(d != 0 ? 1.0f / d : 0.0f), exact_(std::isfinite(inverse_)) {}
    float operator()(float x) const { return d_ == 0 ? 0.0f : exact_ ? x * inverse_ : x / d_; }
    float d_, inverse_;
    bool exact_;
};

// v clamped to [lo, hi] and rounded to the nearest integer, ties to even. Adding and
// removing 1.5 x 2^23 rounds any |v| < 2^22 exactly (the codes here are far smaller);
// written with plain comparisons so it compiles to a few instructions, not library calls.
inline int clamp_round(float v, float lo, float hi) {
    v = v < lo ? lo : v > hi ? hi : v;
    return static_cast<int>((v + 12582912.0f) - 12582912.0f);
}

// Codes for scales the fused passes below cannot take, and the error they leave.
float symmetric_codes_divided(const float* x, const float* w, int n, int lo, int hi, float d, int8_t* q) {
    const Divider over(d);  // d = 0 or 1 / d overflows: divide
    float err = 0;
#pragma omp simd reduction(+ : err)
    for (int i = 0; i < n; ++i) {
        const int c = clamp_round(over(x[i]), static_cast<float>(lo), static_cast<float>(hi));
        q[i] = static_cast<int8_t>(c);
        const float e = x[i] - d * static_cast<float>(c);
        err += weight(w, i) * e * e;
    }
    return err;
}

float affine_codes_divided(const float* x, const float* w, int n, int hi, float d, float m, uint8_t* q) {
    const Divider over(d);  // d = 0 or 1 / d overflows: divide
    float err = 0;
#pragma omp simd reduction(+ : err)
    for (int i = 0; i < n; ++i) {
        const int c = clamp_round(over(x[i] - m), 0.0f, static_cast<float>(hi));
        q[i] = static_cast<uint8_t>(c);
        const float e = x[i] - (d * static_cast<float>(c) + m);
        err += weight(w, i) * e * e;
    }
    return err;
}

// One fused pass at scale d and offset m (0 for symmetric fits): the codes
// q = clamp(round((x - m) / d), lo, hi), as floats, and in the same pass the weighted squared
// error they leave and the sums least squares needs (sum w x q, w q^2, w q). `inverse` is
// 1 / d; the caller handles d = 0 and scales whose inverse overflows.
//
// Written on 8-lane vectors (GCC's generic vectors: two SSE registers, or one AVX2 register
// in the clone picked at load time on CPUs that have it), with the lanes summed in a fixed
// order, so that every CPU computes the same bits. This pass is most of the time the
// k-quants and legacy fits take.
struct Sums {
    float err = 0, wxq = 0, wqq = 0, wq = 0;
};

#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wpsabi"  // the vectors never cross a call: lane_sum is always inlined
using Lanes = float __attribute__((vector_size(32)));
using Ints = int32_t __attribute__((vector_size(32)));
constexpr int kLanes = 8;

// Always inlined, and by reference: the AVX2 clone and the default one pass a Lanes value in
// different registers, so an out-of-line copy taking it by value (an -O0 build) was called
// with the wrong calling convention.
[[gnu::always_inline]] inline float lane_sum(const Lanes& v) { return ((v[0] + v[4]) + (v[2] + v[6])) + ((v[1] + v[5]) + (v[3] + v[7])); }

// The first value of largest magnitude (NaN never wins; 0 when every value is 0), as a
// scalar loop keeping the first strictly larger |x| finds it: the largest |x| on lanes, then
// the first value that has it.
[[gnu::always_inline]] inline float first_largest(const float* x, int n) {
    using Bits = int32_t __attribute__((vector_size(32)));
    Lanes top{};
    int i = 0;
    for (; i + kLanes <= n; i += kLanes) {
        Bits v;
        std::memcpy(&v, x + i, sizeof v);
        const Lanes a = reinterpret_cast<Lanes>(v & 0x7fffffff);
        top = a > top ? a : top;  // a NaN compares false: never taken
    }
    float amax = 0;
    for (int k = 0; k < kLanes; ++k) amax = top[k] > amax ? top[k] : amax;
    for (; i < n; ++i) amax = std::fabs(x[i]) > amax ? std::fabs(x[i]) : amax;
    if (amax == 0) return 0.0f;
    for (i = 0; std::fabs(x[i]) != amax; ++i) {
    }
    return x[i];
}

// The least and largest of x[0..n) as a scalar loop of std::min and std::max from x[0] finds
// them: a NaN is skipped unless it is x[0], which then stays; among equal zeros of both
// signs the first one wins, so a zero result is found again by that loop.
[[gnu::always_inline]] inline void extremes(const float* x, int n, float& lo, float& hi) {
    const float first = x[0];
    Lanes l = Lanes{} + first, h = l;
    int i = 0;
    for (; i + kLanes <= n; i += kLanes) {
        Lanes v;
        std::memcpy(&v, x + i, sizeof v);
        l = v < l ? v : l;
        h = h < v ? v : h;
    }
    lo = first, hi = first;
    for (int k = 0; k < kLanes; ++k) {
        lo = l[k] < lo ? l[k] : lo;
        hi = hi < h[k] ? h[k] : hi;
    }
    for (; i < n; ++i) {
        lo = std::min(lo, x[i]);
        hi = std::max(hi, x[i]);
    }
    if (lo == 0 || hi == 0) {  // which zero comes first decides the sign kept
        lo = first, hi = first;
        for (i = 1; i < n; ++i) {
            lo = std::min(lo, x[i]);
            hi = std::max(hi, x[i]);
        }
    }
}

// Weights of 1, for callers that pass none.
const float* ones() {
    static const auto table = [] {
        std::array<float, 256> a;
        a.fill(1.0f);
        return a;
    }();
    return table.data();
}

[[gnu::always_inline]] inline Sums pass(const float* x, const float* w, int n, float lo, float hi, float d, float inverse, float m, float* q) {
    Lanes err{}, wxq{}, wqq{}, wq{};
    const Lanes vlo = Lanes{} + lo, vhi = Lanes{} + hi;
    int i = 0;
    for (; i + kLanes <= n; i += kLanes) {
        Lanes xv, wv;
        std::memcpy(&xv, x + i, sizeof xv);
        std::memcpy(&wv, w + i, sizeof wv);
        Lanes t = (xv - m) * inverse;
        t = t < vlo ? vlo : t;
        t = t > vhi ? vhi : t;
        const Lanes c = (t + 12582912.0f) - 12582912.0f;  // to nearest, ties to even (|t| < 2^22)
        std::memcpy(q + i, &c, sizeof c);
        const Lanes e = xv - (d * c + m);
        err += wv * e * e;
        wxq += wv * xv * c;
        wqq += wv * c * c;
        wq += wv * c;
    }
    Sums s{lane_sum(err), lane_sum(wxq), lane_sum(wqq), lane_sum(wq)};
    for (; i < n; ++i) {  // a tail shorter than the lanes
        const float c = (std::min(std::max((x[i] - m) * inverse, lo), hi) + 12582912.0f) - 12582912.0f;
        q[i] = c;
        const float e = x[i] - (d * c + m);
        s.err += w[i] * e * e;
        s.wxq += w[i] * x[i] * c;
        s.wqq += w[i] * c * c;
        s.wq += w[i] * c;
    }
    return s;
}

// Nearest codebook level without branches, so that it vectorizes: with the levels sorted,
// the nearest one's index is the number of midpoints between neighbours that t exceeds (a
// tie goes to the lower level), and its value is the first level plus the steps passed.
//
// The level's value is the first level plus each step passed, and plus 0 x each step not
// passed, summed in that order (the bits the codes' error has always had; for the codebooks
// here, small integers, it is exactly the level). For up to 16 levels it is looked up from a
// table summed that way, by index, on lanes; the index is a count of compares.
struct LevelSteps {
    static constexpr int kMax = 16;
    int steps = 0;  // levels - 1
    float first = 0, mid[kMax] = {}, step[kMax] = {};
    Lanes value_lo{}, value_hi{};  // the levels as summed, for indices 0-7 and 8-15
    explicit LevelSteps(const Levels& l) : steps(l.n - 1), first(l.value[0]) {
        if (steps > kMax) throw std::logic_error("a codebook of more than 17 levels");
        for (int k = 0; k < steps; ++k) {
            mid[k] = 0.5f * (l.value[k] + l.value[k + 1]);
            step[k] = l.value[k + 1] - l.value[k];
        }
        // Adding the steps not passed, each 0 x step = +0, changes a sum only once: -0 to +0.
        float passed = first;
        for (int k = 0; k <= steps && k < 16; ++k) {
            const float v = k < steps ? passed + 0.0f : passed;
            // Not (k < 8 ? value_lo : value_hi)[k % 8] = v: GCC 12 at -O1 stored into a copy.
            if (k < 8) value_lo[k] = v;
            else value_hi[k - 8] = v;
            if (k < steps) passed += step[k];
        }
    }
};

// Level indices (as floats) for x / d, the weighted squared error they leave, and the
// least-squares sums for the scale (sum w x l, sum w l^2; l the levels' values).
[[gnu::always_inline]] inline Sums level_pass(const float* x, const float* w, int n, const LevelSteps& ls, float d, float inverse, float* index) {
    Lanes err{}, wxl{}, wll{};
    const Lanes one = Lanes{} + 1.0f, zero{};
    int i = 0;
    for (; i + kLanes <= n; i += kLanes) {
        Lanes xv, wv;
        std::memcpy(&xv, x + i, sizeof xv);
        std::memcpy(&wv, w + i, sizeof wv);
        const Lanes t = xv * inverse;
        Lanes k{}, l = Lanes{} + ls.first;
        if (ls.steps < 16) {
            Ints passed{};
            for (int j = 0; j < ls.steps; ++j) passed -= t > ls.mid[j];  // a true compare is -1
#if defined(__clang__)  // no variable two-vector shuffle there: lane by lane
            for (int lane = 0; lane < kLanes; ++lane) l[lane] = passed[lane] < 8 ? ls.value_lo[passed[lane]] : ls.value_hi[passed[lane] - 8];
#else
            l = __builtin_shuffle(ls.value_lo, ls.value_hi, passed);
#endif
            k = __builtin_convertvector(passed, Lanes);
        } else {
            for (int j = 0; j < ls.steps; ++j) {
                const Lanes above = t > ls.mid[j] ? one : zero;
                k += above;
                l += above * ls.step[j];
            }
        }
        std::memcpy(index + i, &k, sizeof k);
        const Lanes e = xv - d * l;
        err += wv * e * e;
        wxl += wv * xv * l;
        wll += wv * l * l;
    }
    Sums s{lane_sum(err), lane_sum(wxl), lane_sum(wll), 0};
    for (; i < n; ++i) {  // a tail shorter than the lanes
        const float t = x[i] * inverse;
        float k = 0, l = ls.first;
        for (int j = 0; j < ls.steps; ++j)
            if (t > ls.mid[j]) {
                k += 1;
                l += ls.step[j];
            }
        index[i] = k;
        const float e = x[i] - d * l;
        s.err += w[i] * e * e;
        s.wxq += w[i] * x[i] * l;
        s.wqq += w[i] * l * l;
    }
    return s;
}
#pragma GCC diagnostic pop

// Whether x * inverse (= 1 / d) can stand for x / d: d not 0 and its inverse finite.
inline bool invertible(float d, float inverse) { return d != 0 && std::isfinite(inverse); }

// The pass for scales the fused loops cannot take (0, or so small that 1 / d overflows):
// codes by division, then the sums in a second loop. Rare; kept simple.
template <class Code>
Sums sums_for(const float* x, const float* w, int n, const Code* codes, float err, float* q) {
    Sums s;
    s.err = err;
    for (int i = 0; i < n; ++i) {
        q[i] = codes[i];
        s.wxq += weight(w, i) * x[i] * q[i];
        s.wqq += weight(w, i) * q[i] * q[i];
        s.wq += weight(w, i) * q[i];
    }
    return s;
}

[[gnu::noinline]] Sums symmetric_pass_slow(const float* x, const float* w, int n, int lo, int hi, float d, float* q) {
    int8_t codes[256];
    const float err = symmetric_codes_divided(x, w, n, lo, hi, d, codes);
    return sums_for(x, w, n, codes, err, q);
}

[[gnu::noinline]] Sums affine_pass_slow(const float* x, const float* w, int n, int hi, float d, float m, float* q) {
    uint8_t codes[256];
    const float err = affine_codes_divided(x, w, n, hi, d, m, codes);
    return sums_for(x, w, n, codes, err, q);
}

// Scale 0 (a k-quant's sub-block scale code nudged to 0, or an all-zero block): every code
// is 0 and the error is the weighted sum of (x - m)^2, summed on lanes as `pass` sums. The
// least-squares sums are 0, which ends any refit. Every code range here holds 0.
[[gnu::always_inline]] inline Sums zero_pass(const float* x, const float* w, int n, float m, float* q) {
    Lanes err{};
    const Lanes offset = Lanes{} + m;
    int i = 0;
    for (; i + kLanes <= n; i += kLanes) {
        Lanes xv, wv;
        std::memcpy(&xv, x + i, sizeof xv);
        std::memcpy(&wv, w + i, sizeof wv);
        const Lanes e = xv - offset;
        err += wv * e * e;
    }
    Sums s{lane_sum(err), 0, 0, 0};
    for (; i < n; ++i) {
        const float e = x[i] - m;
        s.err += w[i] * e * e;
    }
    for (i = 0; i < n; ++i) q[i] = 0;
    return s;
}

[[gnu::always_inline]] inline Sums symmetric_at(const float* x, const float* w, int n, int lo, int hi, float d, float* q) {
    if (d == 0) return zero_pass(x, w ? w : ones(), n, 0.0f, q);
    const float inverse = 1.0f / d;
    if (!invertible(d, inverse)) return symmetric_pass_slow(x, w, n, lo, hi, d, q);
    return pass(x, w ? w : ones(), n, static_cast<float>(lo), static_cast<float>(hi), d, inverse, 0.0f, q);
}

[[gnu::always_inline]] inline Sums affine_at(const float* x, const float* w, int n, int hi, float d, float m, float* q) {
    if (d == 0) return zero_pass(x, w ? w : ones(), n, m, q);
    const float inverse = 1.0f / d;
    if (!invertible(d, inverse)) return affine_pass_slow(x, w, n, hi, d, m, q);
    return pass(x, w ? w : ones(), n, 0.0f, static_cast<float>(hi), d, inverse, m, q);
}

[[gnu::always_inline]] inline float symmetric_codes_body(const float* x, const float* w, int n, int lo, int hi, float d, int8_t* q) {
    float c[256];
    const Sums s = symmetric_at(x, w, n, lo, hi, d, c);
    for (int i = 0; i < n; ++i) q[i] = static_cast<int8_t>(c[i]);
    return s.err;
}

// The (scale, offset) pairs a search has tried, and at which round of their chain. Each
// chain step is a pure function of the pair (its codes, error and refit), so a chain that
// reaches a pair some chain already had at the same round or an earlier one would only see
// again what that chain saw: it stops, and the fit picks what it would have picked (a
// repeated error is never strictly lower than the best so far).
struct Tried {
    static constexpr int kMax = 48;
    float d[kMax], m[kMax];
    int round[kMax];
    int n = 0;
    bool covered(float dv, float mv, int r) const {
        for (int i = 0; i < n; ++i)
            if (d[i] == dv && m[i] == mv && round[i] <= r) return true;
        return false;
    }
    void add(float dv, float mv, int r) {
        if (n == kMax) return;
        d[n] = dv, m[n] = mv, round[n] = r;
        ++n;
    }
};

// The fits below are written once, always inlined into the public functions (cloned for
// AVX2 by QUANT_AVX2_CLONE) once for each block size the formats use and once for any n;
// the arithmetic, and so the bits, are the same in all of them.
[[gnu::always_inline]] inline float fit_symmetric_body(const float* x, const float* w, int n, int lo, int hi, int8_t* q, bool f16_scale,
                                                       Search search) {
    auto stored = [f16_scale](float v) { return f16_scale ? as_stored_f16(finite_f16(v)) : v; };
    const float xmax = first_largest(x, n);
    if (xmax == 0) {
        for (int i = 0; i < n; ++i) q[i] = 0;
        return 0.0f;
    }
    // Two buffers of codes: the trial's, and the best so far's (swapped, not copied).
    float codes[2][256];
    float *trial = codes[0], *best = nullptr;
    Tried tried;
    float best_err = std::numeric_limits<float>::infinity(), best_d = 0;
    for (int target : {lo, hi}) {
        for (int step = -search.steps; step <= search.steps; ++step) {
            const float t = static_cast<float>(target) + kSpacing * static_cast<float>(step) * (target < 0 ? -1.0f : 1.0f);
            if (t == 0) continue;
            float d = stored(xmax / t);
            // Alternate: the codes for a scale (one pass also gives their error and the sums),
            // then the weighted least-squares scale for those codes.
            for (int round = 0;; ++round) {
                if (tried.covered(d, 0, round)) break;
                tried.add(d, 0, round);
                const Sums s = symmetric_at(x, w, n, lo, hi, d, trial);
                if (s.err < best_err) {
                    best_err = s.err;
                    best_d = d;
                    best = trial;
                    trial = codes[trial == codes[0] ? 1 : 0];
                }
                if (round == search.rounds || s.wqq <= 0) break;
                const float refit = stored(s.wxq / s.wqq);
                if (refit == d) break;
                d = refit;
            }
        }
    }
    if (!best) return symmetric_codes_body(x, w, n, lo, hi, best_d, q), best_d;  // no error was a number
    for (int i = 0; i < n; ++i) q[i] = static_cast<int8_t>(best[i]);
    return best_d;
}

// The sums of w and w x, which do not depend on the codes, in the order GCC's vectorized
// reduction (`omp simd`, SSE2) has always summed them, which the fits' bits depend on: four
// lanes, each summing every fourth value, the lanes then added in order to 0, and any
// values past the last four added one by one; without weights, w is 1 and x is summed one
// value at a time.
[[gnu::always_inline]] inline void weight_sums(const float* x, const float* w, int n, float& sw, float& sx) {
    if (!w) {
        float a = 0;
        for (int i = 0; i < n; ++i) a += x[i];
        sw = static_cast<float>(n);
        sx = a;
        return;
    }
    using Four = float __attribute__((vector_size(16)));
    Four aw{}, ax{};
    int i = 0;
    for (; i + 4 <= n; i += 4) {
        Four xv, wv;
        std::memcpy(&xv, x + i, sizeof xv);
        std::memcpy(&wv, w + i, sizeof wv);
        aw += wv;
        ax += wv * xv;
    }
    sw = (((0.0f + aw[0]) + aw[1]) + aw[2]) + aw[3];
    sx = (((0.0f + ax[0]) + ax[1]) + ax[2]) + ax[3];
    for (; i < n; ++i) {
        sw += w[i];
        sx += w[i] * x[i];
    }
}

[[gnu::always_inline]] inline float affine_codes_body(const float* x, const float* w, int n, int hi, float d, float m, uint8_t* q) {
    float c[256];
    const Sums s = affine_at(x, w, n, hi, d, m, c);
    for (int i = 0; i < n; ++i) q[i] = static_cast<uint8_t>(c[i]);
    return s.err;
}

[[gnu::always_inline]] inline void fit_affine_body(const float* x, const float* w, int n, int hi, uint8_t* q, float& d_out, float& m_out,
                                                     bool f16_params, bool non_positive_offset, Search search) {
    float lo_v, hi_v;
    extremes(x, n, lo_v, hi_v);
    if (non_positive_offset) lo_v = std::min(lo_v, 0.0f);
    auto stored = [f16_params](float v) { return f16_params ? as_stored_f16(finite_f16(v)) : v; };
    float codes[2][256];  // the trial's codes and the best so far's, as in fit_symmetric
    float *trial = codes[0], *best = nullptr;
    Tried tried;
    float best_err = std::numeric_limits<float>::infinity(), best_d = 0, best_m = stored(lo_v);
    if (hi_v != lo_v) {
        float sw_f, sx_f;  // the parts of the least-squares sums that do not depend on the codes
        weight_sums(x, w, n, sw_f, sx_f);
        const double sw = sw_f, sx = sx_f;
        for (int step = -search.steps; step <= search.steps; ++step) {
            float d = stored((hi_v - lo_v) / (static_cast<float>(hi) + kSpacing * static_cast<float>(step)));
            float m = stored(lo_v);
            // Alternate: the codes for (d, m) with their error and sums in one pass, then the
            // weighted least-squares d and m for those codes.
            for (int round = 0;; ++round) {
                if (tried.covered(d, m, round)) break;
                tried.add(d, m, round);
                const Sums s = affine_at(x, w, n, hi, d, m, trial);
                if (s.err < best_err) {
                    best_err = s.err;
                    best_d = d;
                    best_m = m;
                    best = trial;
                    trial = codes[trial == codes[0] ? 1 : 0];
                }
                if (round == search.rounds) break;
                const double sq = s.wq, sqq = s.wqq, sxq = s.wxq;
                const double det = sw * sqq - sq * sq;
                if (det <= 0) break;
                double dd = (sw * sxq - sq * sx) / det, mm = (sqq * sx - sq * sxq) / det;
                if (non_positive_offset && mm > 0) {  // the best offset would be positive: pin it at 0
                    mm = 0;
                    dd = sxq / sqq;
                }
                const float d2 = stored(static_cast<float>(dd));
                const float m2 = stored(static_cast<float>(mm));
                if (d2 == d && m2 == m) break;
                d = d2;
                m = m2;
            }
        }
    }
    if (best)
        for (int i = 0; i < n; ++i) q[i] = static_cast<uint8_t>(best[i]);
    else
        affine_codes_body(x, w, n, hi, best_d, best_m, q);
    d_out = best_d;
    m_out = best_m;
}

}  // namespace

// The public fits: one clone each, n = 8, 16 and 32 (the sizes the formats use) each with
// its own copy of the body, so that those loops unroll and the passes run without calls.
QUANT_AVX2_CLONE float fit_symmetric(const float* x, const float* w, int n, int lo, int hi, int8_t* q, bool f16_scale, Search search) {
    switch (n) {
    case 8: return fit_symmetric_body(x, w, 8, lo, hi, q, f16_scale, search);
    case 16: return fit_symmetric_body(x, w, 16, lo, hi, q, f16_scale, search);
    case 32: return fit_symmetric_body(x, w, 32, lo, hi, q, f16_scale, search);
    default: return fit_symmetric_body(x, w, n, lo, hi, q, f16_scale, search);
    }
}

QUANT_AVX2_CLONE void fit_affine(const float* x, const float* w, int n, int hi, uint8_t* q, float& d, float& m, bool f16_params,
                                 bool non_positive_offset, Search search) {
    switch (n) {
    case 16: return fit_affine_body(x, w, 16, hi, q, d, m, f16_params, non_positive_offset, search);
    case 32: return fit_affine_body(x, w, 32, hi, q, d, m, f16_params, non_positive_offset, search);
    default: return fit_affine_body(x, w, n, hi, q, d, m, f16_params, non_positive_offset, search);
    }
}

// ---- Eight blocks at a time ----------------------------------------------------------------
//
// The k-quants fit 8 or 16 sub-blocks of 16 or 32 values per super-block; one at a time,
// each pass runs on two or four vectors and ends in a horizontal sum, and the calls, the
// bookkeeping and those sums cost more than the arithmetic. Here eight blocks run side by
// side, one block a lane: the p-th values of the eight blocks form one vector. The
// arithmetic of each lane is the arithmetic of fit_symmetric_body / fit_affine_body on that
// block, in the same order (a pass's sums are kept in eight partial sums, the p-th value
// going to partial p mod 8, then added as lane_sum adds), so every lane gets the bits the
// one-block fit gets. The chains of refits run in lockstep, a lane dropping out where its
// own chain stops. They run without the Tried memo, which only skips repeats that can never
// win. A lane whose block needs one of the rare paths (a scale of 0 or one whose inverse
// overflows, a constant block, no error that is a number) is fitted again by the one-block
// fit.

namespace {

#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wpsabi"
using Doubles = double __attribute__((vector_size(64)));

// The lanes of v that do not hold a finite number. (Results here come back through
// references: a vector returned by value draws GCC's ABI note even where the function is
// always inlined.)
[[gnu::always_inline]] inline void not_finite(const Lanes& v, Ints& mask) {
    Ints bits;
    std::memcpy(&bits, &v, sizeof bits);
    Lanes magnitude;
    bits &= 0x7fffffff;
    std::memcpy(&magnitude, &bits, sizeof bits);
    mask = ~(magnitude <= std::numeric_limits<float>::max());
}

[[gnu::always_inline]] inline bool any(const Ints& m) {
    int r = 0;
    for (int k = 0; k < kLanes; ++k) r |= m[k];
    return r != 0;
}

// first_largest on every lane: the largest magnitude of the kN values, then the first value
// that has it. `odd` marks the lanes whose largest magnitude is 0 or not finite (the
// one-block fit takes those).
template <int kN>
[[gnu::always_inline]] inline void first_largest8(const Lanes* X, Lanes& xmax, Ints& odd) {
    Lanes amax{};
    for (int p = 0; p < kN; ++p) {
        const Lanes a = X[p] < 0 ? -X[p] : X[p];
        amax = a > amax ? a : amax;
    }
    xmax = Lanes{};
    for (int p = kN - 1; p >= 0; --p) xmax = (X[p] < 0 ? -X[p] : X[p]) == amax ? X[p] : xmax;
    not_finite(amax, odd);
    odd |= amax == 0;
}

// The best trial so far on every lane of eight fits: its error, scale (and offset), and
// codes; `seen` marks the lanes where some trial's error was a number.
template <int kN>
struct Best8 {
    Lanes err = Lanes{} + std::numeric_limits<float>::infinity(), d{}, m{};
    Lanes codes[kN] = {};
    Ints seen{};
    // Takes the trial on the lanes of `active` where its error is strictly lower.
    [[gnu::always_inline]] void offer(const Ints& active, const Lanes& e, const Lanes& dv, const Lanes& mv, const Lanes* c) {
        const Ints better = active & (e < err);
        err = better ? e : err;
        d = better ? dv : d;
        m = better ? mv : m;
        seen |= better;
        for (int p = 0; p < kN; ++p) codes[p] = better ? c[p] : codes[p];
    }
};

// Transposes eight rows of eight lanes in place: v[r][c] becomes v[c][r].
template <class V>
[[gnu::always_inline]] inline void transpose8(V* v) {
    V t[8], u[8];
    for (int r = 0; r < 8; r += 2) {
        t[r] = __builtin_shufflevector(v[r], v[r + 1], 0, 8, 1, 9, 4, 12, 5, 13);
        t[r + 1] = __builtin_shufflevector(v[r], v[r + 1], 2, 10, 3, 11, 6, 14, 7, 15);
    }
    for (int r = 0; r < 8; r += 4)
        for (int h = 0; h < 2; ++h) {
            u[r + 2 * h] = __builtin_shufflevector(t[r + h], t[r + h + 2], 0, 1, 8, 9, 4, 5, 12, 13);
            u[r + 2 * h + 1] = __builtin_shufflevector(t[r + h], t[r + h + 2], 2, 3, 10, 11, 6, 7, 14, 15);
        }
    for (int c = 0; c < 4; ++c) {
        v[c] = __builtin_shufflevector(u[c], u[c + 4], 0, 1, 2, 3, 8, 9, 10, 11);
        v[c + 4] = __builtin_shufflevector(u[c], u[c + 4], 4, 5, 6, 7, 12, 13, 14, 15);
    }
}

// The eight blocks of kN values at x, one a lane: X[p] holds the p-th value of each.
template <int kN>
[[gnu::always_inline]] inline void load_blocks(const float* x, Lanes* X) {
    for (int c = 0; c < kN; c += kLanes) {
        for (int j = 0; j < kLanes; ++j) std::memcpy(&X[c + j], x + j * kN + c, sizeof(Lanes));
        transpose8(X + c);
    }
}

// The lanes' codes back into eight blocks of kN codes.
template <int kN, class Code>
[[gnu::always_inline]] inline void store_codes(const Lanes* C, Code* q) {
    for (int c = 0; c < kN; c += kLanes) {
        Ints v[kLanes];
        for (int k = 0; k < kLanes; ++k) v[k] = __builtin_convertvector(C[c + k], Ints);
        transpose8(v);
        for (int j = 0; j < kLanes; ++j)
            for (int k = 0; k < kLanes; ++k) q[j * kN + c + k] = static_cast<Code>(v[j][k]);
    }
}

// The four sums of a pass over some of the values, on every lane.
struct LaneSums {
    Lanes err{}, wxq{}, wqq{}, wq{};
};
[[gnu::always_inline]] inline LaneSums operator+(const LaneSums& a, const LaneSums& b) {
    return {a.err + b.err, a.wxq + b.wxq, a.wqq + b.wqq, a.wq + b.wq};
}

// The eight partial sums of a pass (partial(k): the values p = k mod 8) added in lane_sum's
// tree.
template <class Partial>
[[gnu::always_inline]] inline LaneSums partial_tree(Partial partial) {
    return ((partial(0) + partial(4)) + (partial(2) + partial(6))) + ((partial(1) + partial(5)) + (partial(3) + partial(7)));
}

// `pass` for eight blocks: codes clamp(round((x - m) / d), lo, hi) into C, and each lane's
// sums. A lane whose d is 0 gets codes 0 and the error zero_pass gives (`zero`); a lane
// whose inverse overflows gets garbage (the caller refits it alone). `pass` sums the p-th
// value into partial sum p mod 8 and adds the partials as lane_sum does; here each partial
// is summed on its own, in that order, and the partials added in that tree.
template <int kN>
[[gnu::always_inline]] inline void pass8(const Lanes* X, const Lanes* W, float lo, float hi, const Lanes& d, const Lanes& inverse, const Lanes& m,
                                         const Ints& zero, Lanes* C, LaneSums& out) {
    const Lanes vlo = Lanes{} + lo, vhi = Lanes{} + hi, none{};
    auto partial = [&](int k) __attribute__((always_inline)) {
        LaneSums a;
#pragma GCC unroll 4
        for (int p = k; p < kN; p += kLanes) {
            Lanes t = (X[p] - m) * inverse;
            t = t < vlo ? vlo : t;
            t = t > vhi ? vhi : t;
            Lanes c = (t + 12582912.0f) - 12582912.0f;
            c = zero ? none : c;
            C[p] = c;
            Lanes e = X[p] - (d * c + m);
            e = zero ? X[p] - m : e;
            a.err += W[p] * e * e;
            a.wxq += W[p] * X[p] * c;
            a.wqq += W[p] * c * c;
            a.wq += W[p] * c;
        }
        return a;
    };
    out = partial_tree(partial);
    // zero_pass's sums are 0 (a code of 0 gives +0 or -0 terms; both end a refit the same way)
    out.wxq = zero ? none : out.wxq;
    out.wqq = zero ? none : out.wqq;
    out.wq = zero ? none : out.wq;
}

// as_stored_f16(finite_f16(v)) on every lane: the same integer steps as float_to_half_bits
// and half_bits_to_float.
[[gnu::always_inline]] inline void stored_f16(const Lanes& v, Lanes& out) {
    using Bits = uint32_t __attribute__((vector_size(32)));
    Lanes c = v < -65504.0f ? Lanes{} - 65504.0f : v;
    c = c > 65504.0f ? Lanes{} + 65504.0f : c;
    Bits bits;
    std::memcpy(&bits, &c, sizeof bits);
    const Bits x = bits & 0x7fffffff, sign = (bits >> 16) & 0x8000;
    const Bits normal = (x - (uint32_t{127 - 15} << 23) + 0x0fff + ((x >> 13) & 1)) >> 13;
    Lanes magnitude;
    std::memcpy(&magnitude, &x, sizeof x);
    const Lanes plus_half = magnitude + 0.5f;
    Bits subnormal;
    std::memcpy(&subnormal, &plus_half, sizeof subnormal);
    subnormal -= 0x3f000000u;
    Bits h = x < 0x38800000 ? subnormal : normal;
    h = x >= 0x477ff000 ? Bits{} + 0x7c00 : h;
    h = x > 0x7f800000 ? (0x7e00 | ((x >> 13) & 0x3ff)) : h;
    // and back
    const Bits m = h & 0x7fff;
    const Bits wide = (m << 13) + (uint32_t{127 - 15} << 23);
    const Bits special = m >= 0x7c00 ? Bits{} + (uint32_t{128 - 16} << 23) : Bits{};
    const Lanes sub = __builtin_convertvector(reinterpret_cast<const Ints&>(m), Lanes) * 0x1p-24f;
    Bits sub_bits;
    std::memcpy(&sub_bits, &sub, sizeof sub_bits);
    Bits result = m < 0x400 ? sub_bits : wide + special;
    result |= sign << 16;
    std::memcpy(&out, &result, sizeof out);
}

// A scale as the fit stores it, on every lane: f16 (as_stored_f16(finite_f16(v))) when kF16.
template <bool kF16>
[[gnu::always_inline]] inline void stored8(Lanes& v) {
    if constexpr (kF16) stored_f16(v, v);
}

// One chain of a symmetric or codebook fit on every lane not `odd`, as the one-block fits run
// it: pass(d, active, sums) gives the codes for scale d (into `codes`) and their sums, which
// are offered to `best`; then the least-squares scale for those codes, until a lane's chain
// stops (after `rounds` refits, with no codes to refit from, or at a refit to the same
// scale). The pass marks in `odd` the lanes it cannot take.
template <int kN, bool kF16, class Pass>
[[gnu::always_inline]] inline void chain8(Lanes d, int rounds, Best8<kN>& best, Ints& odd, const Lanes* codes, Pass pass) {
    Ints active = ~odd;
    for (int round = 0;; ++round) {
        LaneSums sums;
        pass(d, active, sums);
        best.offer(active, sums.err, d, Lanes{}, codes);
        if (round == rounds) break;
        Lanes refit = sums.wxq / sums.wqq;
        stored8<kF16>(refit);
        active &= ~(sums.wqq <= 0) & ~(refit == d);
        if (!any(active)) break;
        d = active ? refit : d;
    }
}

// Eight symmetric fits (fit_symmetric_body) of kN values each; the scale stored as f16 when
// kF16, else a float.
template <int kN, bool kF16>
[[gnu::always_inline]] inline void fit_symmetric8_body(const float* x, const float* w, int lo, int hi, Search search, float* scale, int8_t* q) {
    Lanes X[kN], W[kN], C[kN], xmax;
    load_blocks<kN>(x, X);
    load_blocks<kN>(w, W);
    Ints odd;
    first_largest8<kN>(X, xmax, odd);
    Best8<kN> best;
    const Ints none{};
    for (int target : {lo, hi}) {
        for (int step = -search.steps; step <= search.steps; ++step) {
            const float t = static_cast<float>(target) + kSpacing * static_cast<float>(step) * (target < 0 ? -1.0f : 1.0f);
            if (t == 0) continue;
            Lanes d = xmax / t;
            stored8<kF16>(d);
            chain8<kN, kF16>(d, search.rounds, best, odd, C, [&](const Lanes& dv, const Ints& active, LaneSums& sums) __attribute__((always_inline)) {
                const Lanes inverse = 1.0f / dv;
                Ints overflow;
                not_finite(inverse, overflow);
                odd |= active & ((dv == 0) | overflow);
                pass8<kN>(X, W, static_cast<float>(lo), static_cast<float>(hi), dv, inverse, Lanes{}, none, C, sums);
            });
        }
    }
    odd |= ~best.seen;
    store_codes<kN>(best.codes, q);
    for (int j = 0; j < kLanes; ++j)
        scale[j] = odd[j] ? fit_symmetric_body(x + j * kN, w + j * kN, kN, lo, hi, q + j * kN, kF16, search) : best.d[j];
}

// Eight affine fits (fit_affine_body) of kN values each: d and m stored as f16 when kF16,
// else floats; m <= 0 when kNonPositive.
template <int kN, bool kF16, bool kNonPositive>
[[gnu::always_inline]] inline void fit_affine8_body(const float* x, const float* w, int hi, Search search, float* d_out, float* m_out, uint8_t* q) {
    Lanes X[kN], W[kN], C[kN];
    load_blocks<kN>(x, X);
    load_blocks<kN>(w, W);
    // extremes, as a scalar loop of std::min and std::max from the first value finds them
    Lanes lo_v = X[0], hi_v = X[0];
    for (int p = 1; p < kN; ++p) {
        lo_v = X[p] < lo_v ? X[p] : lo_v;
        hi_v = hi_v < X[p] ? X[p] : hi_v;
    }
    const Lanes zeros{};
    if constexpr (kNonPositive) lo_v = zeros < lo_v ? zeros : lo_v;  // std::min(lo_v, 0.0f)
    // weight_sums: four partial sums, each of every fourth value, added in order to 0
    Lanes aw[4] = {}, ax[4] = {};
    for (int p = 0; p < kN; ++p) {
        aw[p % 4] += W[p];
        ax[p % 4] += W[p] * X[p];
    }
    const Doubles sw = __builtin_convertvector((((zeros + aw[0]) + aw[1]) + aw[2]) + aw[3], Doubles);
    const Doubles sx = __builtin_convertvector((((zeros + ax[0]) + ax[1]) + ax[2]) + ax[3], Doubles);
    Ints odd = hi_v == lo_v;
    Best8<kN> best;
    const Ints none{};
    for (int step = -search.steps; step <= search.steps; ++step) {
        Lanes d = (hi_v - lo_v) / (static_cast<float>(hi) + kSpacing * static_cast<float>(step));
        Lanes m = lo_v;
        stored8<kF16>(d);
        stored8<kF16>(m);
        Ints active = ~odd;
        for (int round = 0;; ++round) {
            const Lanes inverse = 1.0f / d;
            Ints overflow;
            not_finite(inverse, overflow);
            odd |= active & ((d == 0) | overflow);
            LaneSums sums;
            pass8<kN>(X, W, 0.0f, static_cast<float>(hi), d, inverse, m, none, C, sums);
            const Lanes &wxq = sums.wxq, &wqq = sums.wqq, &wq = sums.wq;
            best.offer(active, sums.err, d, m, C);
            if (round == search.rounds) break;
            const Doubles sq = __builtin_convertvector(wq, Doubles), sqq = __builtin_convertvector(wqq, Doubles),
                          sxq = __builtin_convertvector(wxq, Doubles);
            const Doubles det = sw * sqq - sq * sq;
            active &= ~__builtin_convertvector(det <= 0, Ints);
            Doubles dd = (sw * sxq - sq * sx) / det, mm = (sqq * sx - sq * sxq) / det;
            if constexpr (kNonPositive) {
                const auto positive = mm > 0;  // the best offset would be positive: pin it at 0
                mm = positive ? Doubles{} : mm;
                dd = positive ? sxq / sqq : dd;
            }
            Lanes d2 = __builtin_convertvector(dd, Lanes), m2 = __builtin_convertvector(mm, Lanes);
            stored8<kF16>(d2);
            stored8<kF16>(m2);
            active &= ~((d2 == d) & (m2 == m));
            if (!any(active)) break;
            d = active ? d2 : d;
            m = active ? m2 : m;
        }
    }
    odd |= ~best.seen;
    store_codes<kN>(best.codes, q);
    for (int j = 0; j < kLanes; ++j) {
        d_out[j] = best.d[j];
        m_out[j] = best.m[j];
        if (odd[j]) fit_affine_body(x + j * kN, w + j * kN, kN, hi, q + j * kN, d_out[j], m_out[j], kF16, kNonPositive, search);
    }
}

// Eight blocks' best of `trials` candidates: for each lane, the first candidate of least
// error (as a loop over them keeping the first strictly lower error finds it; -1 when no
// error is a number), and its codes. run(t, codes, sums, odd) runs candidate t on every lane,
// marking in `odd` the lanes it cannot take; one(j, t, codes) runs it on lane j alone and
// returns its error (for those lanes).
template <int kN, class Code, class Run, class One>
[[gnu::always_inline]] inline void best_of8(int trials, Run run, One one, Code* q, int* pick) {
    Lanes C[kN];
    Best8<kN> best;
    Ints odd{};
    const Ints every = Ints{} - 1;
    for (int t = 0; t < trials; ++t) {
        LaneSums sums;
        run(t, C, sums, odd);
        best.offer(every, sums.err, Lanes{}, Lanes{} + static_cast<float>(t), C);  // m: the candidate's number
    }
    store_codes<kN>(best.codes, q);
    for (int j = 0; j < kLanes; ++j) {
        pick[j] = best.seen[j] ? static_cast<int>(best.m[j]) : -1;
        if (!odd[j]) continue;
        Code trial[kN];
        float least = std::numeric_limits<float>::infinity();
        pick[j] = -1;
        for (int t = 0; t < trials; ++t) {
            const float err = one(j, t, trial);
            if (err < least) {
                least = err;
                pick[j] = t;
                std::copy(trial, trial + kN, q + j * kN);
            }
        }
    }
}

// best_of8 over (scale, offset) pairs: symmetric_codes (Code int8_t) or affine_codes.
template <int kN, class Code>
[[gnu::always_inline]] inline void best_codes8_body(const float* x, const float* w, int lo, int hi, int trials, const float* d_in, const float* m_in,
                                                    Code* q, int* pick) {
    Lanes X[kN], W[kN];
    load_blocks<kN>(x, X);
    load_blocks<kN>(w, W);
    auto run = [&](int t, Lanes* C, LaneSums& sums, Ints& odd) __attribute__((always_inline)) {
        Lanes d, m;
        std::memcpy(&d, d_in + t * kLanes, sizeof d);
        std::memcpy(&m, m_in + t * kLanes, sizeof m);
        const Ints zero = d == 0;
        const Lanes inverse = zero ? Lanes{} : 1.0f / d;
        Ints overflow;
        not_finite(inverse, overflow);
        odd |= overflow & ~zero;
        pass8<kN>(X, W, static_cast<float>(lo), static_cast<float>(hi), d, inverse, m, zero, C, sums);
    };
    auto one = [&](int j, int t, Code* trial) {
        const float d = d_in[t * kLanes + j], m = m_in[t * kLanes + j];
        if constexpr (std::is_same_v<Code, int8_t>) return symmetric_codes_body(x + j * kN, w + j * kN, kN, lo, hi, d, trial);
        else return affine_codes_body(x + j * kN, w + j * kN, kN, hi, d, m, trial);
    };
    best_of8<kN>(trials, run, one, q, pick);
}
#pragma GCC diagnostic pop

}  // namespace

QUANT_AVX2_CLONE void fit_symmetric8(const float* x, const float* w, int n, int lo, int hi, int8_t* q, bool f16_scale, Search search, float* scale) {
    if (f16_scale) {
        if (n == 8) return fit_symmetric8_body<8, true>(x, w, lo, hi, search, scale, q);
        if (n == 16) return fit_symmetric8_body<16, true>(x, w, lo, hi, search, scale, q);
        if (n == 32) return fit_symmetric8_body<32, true>(x, w, lo, hi, search, scale, q);
    } else {
        if (n == 16) return fit_symmetric8_body<16, false>(x, w, lo, hi, search, scale, q);
        if (n == 32) return fit_symmetric8_body<32, false>(x, w, lo, hi, search, scale, q);
    }
    for (int j = 0; j < kLanes; ++j) scale[j] = fit_symmetric_body(x + j * n, w + j * n, n, lo, hi, q + j * n, f16_scale, search);
}

QUANT_AVX2_CLONE void fit_affine8(const float* x, const float* w, int n, int hi, uint8_t* q, bool f16_params, bool non_positive_offset, Search search,
                                  float* d, float* m) {
    if (!f16_params && non_positive_offset) {
        if (n == 16) return fit_affine8_body<16, false, true>(x, w, hi, search, d, m, q);
        if (n == 32) return fit_affine8_body<32, false, true>(x, w, hi, search, d, m, q);
    }
    if (f16_params && !non_positive_offset && n == 32) return fit_affine8_body<32, true, false>(x, w, hi, search, d, m, q);
    for (int j = 0; j < kLanes; ++j) fit_affine_body(x + j * n, w + j * n, n, hi, q + j * n, d[j], m[j], f16_params, non_positive_offset, search);
}

QUANT_AVX2_CLONE void best_symmetric_codes8(const float* x, const float* w, int n, int lo, int hi, int trials, const float* d, int8_t* q,
                                             int* pick) {
    float offsets[8 * 8] = {};
    if (trials > 8) throw std::logic_error("best_symmetric_codes8: more than 8 trials");
    if (n == 16) return best_codes8_body<16>(x, w, lo, hi, trials, d, offsets, q, pick);
    if (n == 32) return best_codes8_body<32>(x, w, lo, hi, trials, d, offsets, q, pick);
    throw std::logic_error("best_symmetric_codes8: blocks of 16 or 32 only");
}

QUANT_AVX2_CLONE void best_affine_codes8(const float* x, const float* w, int n, int hi, int trials, const float* d, const float* m, uint8_t* q,
                                         int* pick) {
    if (n == 16) return best_codes8_body<16>(x, w, 0, hi, trials, d, m, q, pick);
    if (n == 32) return best_codes8_body<32>(x, w, 0, hi, trials, d, m, q, pick);
    throw std::logic_error("best_affine_codes8: blocks of 16 or 32 only");
}

namespace {

[[gnu::noinline]] float level_codes_divided(const float* x, const float* w, int n, const Levels& levels, float d, uint8_t* index) {
    const Divider over(d);  // 1 / d overflows: divide, and find the level by bisection
    float err = 0;
    for (int i = 0; i < n; ++i) {
        const float t = over(x[i]);
        int lo = 0, hi = levels.n - 1;  // nearest level by bisection over the sorted values
        while (hi - lo > 1) {
            const int mid = (lo + hi) / 2;
            (levels.value[mid] <= t ? lo : hi) = mid;
        }
        const int k = (t - levels.value[lo] <= levels.value[hi] - t) ? lo : hi;
        index[i] = static_cast<uint8_t>(k);
        const float e = x[i] - d * levels.value[k];
        err += weight(w, i) * e * e;
    }
    return err;
}

// The slow path of levels_at: 1 / d overflows.
[[gnu::noinline]] Sums levels_divided(const float* x, const float* w, int n, const Levels& levels, float d, float* index) {
    uint8_t codes[256];
    Sums s;
    s.err = level_codes_divided(x, w, n, levels, d, codes);
    for (int i = 0; i < n; ++i) {
        index[i] = codes[i];
        const float l = levels.value[codes[i]];
        s.wxq += weight(w, i) * x[i] * l;
        s.wqq += weight(w, i) * l * l;
    }
    return s;
}

// Level indices and sums for scale d: the vector pass, or division where 1 / d overflows.
[[gnu::always_inline]] inline Sums levels_at(const float* x, const float* w, int n, const Levels& levels, const LevelSteps& ls, float d,
                                             float* index) {
    const float inverse = d != 0 ? 1.0f / d : 0.0f;  // d = 0: every value is 0 / d = 0
    if (!std::isfinite(inverse)) return levels_divided(x, w, n, levels, d, index);
    return level_pass(x, w ? w : ones(), n, ls, d, inverse, index);
}

[[gnu::always_inline]] inline float level_codes_body(const float* x, const float* w, int n, const Levels& levels, const LevelSteps& ls,
                                                     float d, uint8_t* index) {
    float k[256];
    const Sums s = levels_at(x, w, n, levels, ls, d, k);
    for (int i = 0; i < n; ++i) index[i] = static_cast<uint8_t>(k[i]);
    return s.err;
}

[[gnu::always_inline]] inline float fit_levels_body(const float* x, const float* w, int n, const Levels& levels, uint8_t* index,
                                                    bool f16_scale) {
    auto stored = [f16_scale](float v) { return f16_scale ? as_stored_f16(finite_f16(v)) : v; };
    const LevelSteps ls(levels);
    const float xmax = first_largest(x, n);
    if (xmax == 0) {
        level_codes_body(x, w, n, levels, ls, 0.0f, index);
        return 0.0f;
    }
    float codes[2][256];  // the trial's levels and the best so far's, as in fit_symmetric
    float *trial = codes[0], *best = nullptr;
    Tried tried;
    float best_err = std::numeric_limits<float>::infinity(), best_d = 0;
    for (float end : {levels.value[0], levels.value[levels.n - 1]}) {
        if (end == 0) continue;
        for (int step = -kDefaultSearch.steps; step <= kDefaultSearch.steps; ++step) {
            float d = stored(xmax / (end * (1.0f + 0.05f * static_cast<float>(step))));
            // Alternate, as fit_symmetric: the levels for d (with their error and sums in one
            // pass), then the least-squares scale for those levels.
            for (int round = 0;; ++round) {
                if (tried.covered(d, 0, round)) break;
                tried.add(d, 0, round);
                const Sums s = levels_at(x, w, n, levels, ls, d, trial);
                if (s.err < best_err) {
                    best_err = s.err;
                    best_d = d;
                    best = trial;
                    trial = codes[trial == codes[0] ? 1 : 0];
                }
                if (round == kDefaultSearch.rounds || s.wqq <= 0) break;
                const float refit = stored(s.wxq / s.wqq);
                if (refit == d) break;
                d = refit;
            }
        }
    }
    if (!best) return level_codes_body(x, w, n, levels, ls, best_d, index), best_d;
    for (int i = 0; i < n; ++i) index[i] = static_cast<uint8_t>(best[i]);
    return best_d;
}

}  // namespace

QUANT_AVX2_CLONE float level_codes(const float* x, const float* w, int n, const Levels& levels, float d, uint8_t* index) {
    const LevelSteps ls(levels);
    return n == 32 ? level_codes_body(x, w, 32, levels, ls, d, index) : level_codes_body(x, w, n, levels, ls, d, index);
}

QUANT_AVX2_CLONE float fit_levels(const float* x, const float* w, int n, const Levels& levels, uint8_t* index, bool f16_scale) {
    return n == 32 ? fit_levels_body(x, w, 32, levels, index, f16_scale) : fit_levels_body(x, w, n, levels, index, f16_scale);
}

namespace {

#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wpsabi"

// level_pass for eight blocks, one a lane (as pass8 is to pass): level indices (as floats)
// into K, and each lane's error and least-squares sums. Codebooks of up to 16 levels.
template <int kN>
[[gnu::always_inline]] inline void level_pass8(const Lanes* X, const Lanes* W, const LevelSteps& ls, const Lanes& d, const Lanes& inverse, Lanes* K,
                                               LaneSums& out) {
    auto partial = [&](int k) __attribute__((always_inline)) {
        LaneSums a;
#pragma GCC unroll 4
        for (int p = k; p < kN; p += kLanes) {
            const Lanes t = X[p] * inverse;
            Ints passed{};
            for (int j = 0; j < ls.steps; ++j) passed -= t > ls.mid[j];  // a true compare is -1
            Lanes l;
#if defined(__clang__)  // no variable two-vector shuffle there: lane by lane
            for (int lane = 0; lane < kLanes; ++lane) l[lane] = passed[lane] < 8 ? ls.value_lo[passed[lane]] : ls.value_hi[passed[lane] - 8];
#else
            l = __builtin_shuffle(ls.value_lo, ls.value_hi, passed);
#endif
            K[p] = __builtin_convertvector(passed, Lanes);
            const Lanes e = X[p] - d * l;
            a.err += W[p] * e * e;
            a.wxq += W[p] * X[p] * l;
            a.wqq += W[p] * l * l;
        }
        return a;
    };
    out = partial_tree(partial);
}

// Eight fit_levels_body fits of kN values each (a codebook of up to 16 levels).
template <int kN, bool kF16>
[[gnu::always_inline]] inline void fit_levels8_body(const float* x, const float* w, const Levels& levels, const LevelSteps& ls, uint8_t* index,
                                                    float* scale) {
    Lanes X[kN], W[kN], K[kN], xmax;
    load_blocks<kN>(x, X);
    load_blocks<kN>(w, W);
    Ints odd;
    first_largest8<kN>(X, xmax, odd);
    Best8<kN> best;
    for (float end : {levels.value[0], levels.value[levels.n - 1]}) {
        if (end == 0) continue;
        for (int step = -kDefaultSearch.steps; step <= kDefaultSearch.steps; ++step) {
            Lanes d = xmax / (end * (1.0f + 0.05f * static_cast<float>(step)));
            stored8<kF16>(d);
            chain8<kN, kF16>(d, kDefaultSearch.rounds, best, odd, K, [&](const Lanes& dv, const Ints& active, LaneSums& sums) __attribute__((always_inline)) {
                const Lanes inverse = dv != 0 ? 1.0f / dv : Lanes{};
                Ints overflow;
                not_finite(inverse, overflow);
                odd |= active & overflow;
                level_pass8<kN>(X, W, ls, dv, inverse, K, sums);
            });
        }
    }
    odd |= ~best.seen;
    store_codes<kN>(best.codes, index);
    for (int j = 0; j < kLanes; ++j)
        scale[j] = odd[j] ? fit_levels_body(x + j * kN, w + j * kN, kN, levels, index + j * kN, kF16) : best.d[j];
}

// best_of8 over scales for a codebook (level_codes).
template <int kN>
[[gnu::always_inline]] inline void best_level_codes8_body(const float* x, const float* w, const Levels& levels, const LevelSteps& ls, int trials,
                                                          const float* d_in, uint8_t* index, int* pick) {
    Lanes X[kN], W[kN];
    load_blocks<kN>(x, X);
    load_blocks<kN>(w, W);
    auto run = [&](int t, Lanes* K, LaneSums& sums, Ints& odd) __attribute__((always_inline)) {
        Lanes d;
        std::memcpy(&d, d_in + t * kLanes, sizeof d);
        const Lanes inverse = d != 0 ? 1.0f / d : Lanes{};
        Ints overflow;
        not_finite(inverse, overflow);
        odd |= overflow;
        level_pass8<kN>(X, W, ls, d, inverse, K, sums);
    };
    auto one = [&](int j, int t, uint8_t* trial) { return level_codes_body(x + j * kN, w + j * kN, kN, levels, ls, d_in[t * kLanes + j], trial); };
    best_of8<kN>(trials, run, one, index, pick);
}
#pragma GCC diagnostic pop

}  // namespace

QUANT_AVX2_CLONE void fit_levels8(const float* x, const float* w, int n, const Levels& levels, uint8_t* index, bool f16_scale, float* scale) {
    const LevelSteps ls(levels);
    if (n == 32 && ls.steps < LevelSteps::kMax)
        return f16_scale ? fit_levels8_body<32, true>(x, w, levels, ls, index, scale) : fit_levels8_body<32, false>(x, w, levels, ls, index, scale);
    for (int j = 0; j < kLanes; ++j) scale[j] = fit_levels_body(x + j * n, w + j * n, n, levels, index + j * n, f16_scale);
}

QUANT_AVX2_CLONE void best_level_codes8(const float* x, const float* w, int n, const Levels& levels, int trials, const float* d, uint8_t* index,
                                        int* pick) {
    const LevelSteps ls(levels);
    if (n != 32 || ls.steps >= LevelSteps::kMax) throw std::logic_error("best_level_codes8: blocks of 32 and codebooks of up to 16 levels only");
    best_level_codes8_body<32>(x, w, levels, ls, trials, d, index, pick);
}

int pick_scale(const float* x, const float* w, int n, const Levels& levels, const float* scales, int count, uint8_t* index) {
    uint8_t trial[256];
    float best_err = std::numeric_limits<float>::infinity();
    int best = 0;
    for (int k = 0; k < count; ++k) {
        const float err = level_codes(x, w, n, levels, scales[k], trial);
        if (err < best_err) {
            best_err = err;
            best = k;
        }
    }
    level_codes(x, w, n, levels, scales[best], index);
    return best;
}

const float* block_weights(const float* x, const float* importance, int n, float sigma2, float* out) {
    for (int i = 0; i < n; ++i) out[i] = (importance ? importance[i] : 1.0f) * std::sqrt(sigma2 + x[i] * x[i]);
    return out;
}

}  // namespace quant::detail
