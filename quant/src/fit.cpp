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
            if (!(step[k] > 0)) throw std::logic_error("a codebook's levels not ascending");
        }
        for (int k = steps; k < kMax; ++k) mid[k] = std::numeric_limits<float>::infinity();  // past the last: never exceeded
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
        if (target == hi && lo == -hi) break;  // hi's chains would mirror lo's: the same errors, and ties keep lo's
        for (int step = -search.steps; step <= search.steps; ++step) {
            const float t = static_cast<float>(target) + kSpacing * static_cast<float>(step) * (target < 0 ? -1.0f : 1.0f);
            if (t == 0) continue;
            float d = stored(xmax / t);
            if (search.bound_refits) {
                const Sums s = symmetric_at(x, w, n, lo, hi, d, trial);
                if (s.err < best_err) best_err = s.err, best_d = d;
                const float refit = stored(s.wxq / s.wqq);
                if (!(s.wqq > 0) || refit == d || refit == 0 || !invertible(refit, 1.0f / refit)) continue;
                const float bound = s.err + (refit - d) * ((refit + d) * s.wqq - 2.0f * s.wxq);
                if (bound < best_err) best_err = bound, best_d = refit;
                continue;
            }
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
    if (!best) return symmetric_codes_body(x, w, n, lo, hi, best_d, q), best_d;  // no error was a number, or bound_refits
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

#if defined(__GNUC__) && !defined(__clang__) && defined(__x86_64__) && !defined(QUANT_NO_CLONES)
#define QUANT_WIDE 1
// The sixteen-lane code below (namespace lanes16) is compiled for AVX-512 and called only
// where wide_paths() says the CPU has it.
#define LANES16_BEGIN                                                           \
    namespace {                                                                 \
    _Pragma("GCC push_options") _Pragma("GCC target(\"avx512f,avx512bw,avx512dq,avx512vl\")") \
        _Pragma("GCC diagnostic push") _Pragma("GCC diagnostic ignored \"-Wpsabi\"") namespace lanes16 {
#define LANES16_END \
    }               \
    _Pragma("GCC diagnostic pop") _Pragma("GCC pop_options") }
namespace {
const bool kCpuAvx512 = (__builtin_cpu_init(), __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
                                                 __builtin_cpu_supports("avx512dq") && __builtin_cpu_supports("avx512vl"));
}
#else
namespace {
constexpr bool kCpuAvx512 = false;
}
#endif
bool g_wide_paths = kCpuAvx512;

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
namespace lanes8 {
using Lanes8 = Lanes;
#include "fit_lanes.inc"  // Doubles, Best8, pass8, fit_symmetric8_body, ...
}  // namespace lanes8
using namespace lanes8;
#pragma GCC diagnostic pop

}  // namespace

QUANT_AVX2_CLONE void fit_symmetric8(const float* x, const float* w, int n, int lo, int hi, int8_t* q, bool f16_scale, Search search, float* scale) {
    fit_symmetric_lanes(x, w, n, lo, hi, q, f16_scale, search, scale);
}

QUANT_AVX2_CLONE void fit_affine8(const float* x, const float* w, int n, int hi, uint8_t* q, bool f16_params, bool non_positive_offset, Search search,
                                  float* d, float* m) {
    fit_affine_lanes(x, w, n, hi, q, f16_params, non_positive_offset, search, d, m);
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

QUANT_AVX2_CLONE void best_affine_pair8(const float* x, const float* w, int n, int hi, int trials, const float* d, const float* m, int* pick) {
    if (n == 16) return best_pair8_body<16>(x, w, hi, trials, d, m, pick);
    if (n == 32) return best_pair8_body<32>(x, w, hi, trials, d, m, pick);
    throw std::logic_error("best_affine_pair8: blocks of 16 or 32 only");
}

// ---- Sixteen blocks at a time (AVX-512) --------------------------------------------------
//
// The same fits with sixteen blocks side by side, one AVX-512 register a vector, where the
// CPU has it (wide_paths()); each lane's arithmetic is the one-block fit's, so the bits are
// those of the eight-lane fits. Elsewhere the 16-block calls run as two 8-block ones.

#ifdef QUANT_WIDE
LANES16_BEGIN
using Lanes8 = lanes8::Lanes8;
using Lanes = float __attribute__((vector_size(64)));
using Ints = int32_t __attribute__((vector_size(64)));
constexpr int kLanes = 16;
#include "fit_lanes.inc"

void fit_symmetric(const float* x, const float* w, int n, int lo, int hi, int8_t* q, bool f16_scale, Search search, float* scale) {
    fit_symmetric_lanes(x, w, n, lo, hi, q, f16_scale, search, scale);
}

void fit_affine(const float* x, const float* w, int n, int hi, uint8_t* q, bool f16_params, bool non_positive_offset, Search search, float* d,
                float* m) {
    fit_affine_lanes(x, w, n, hi, q, f16_params, non_positive_offset, search, d, m);
}

void best_codes(const float* x, const float* w, int n, int lo, int hi, int trials, const float* d, const float* m, int8_t* qs, uint8_t* qa,
                int* pick) {
    if (qs && n == 16) return best_codes8_body<16>(x, w, lo, hi, trials, d, m, qs, pick);
    if (qs && n == 32) return best_codes8_body<32>(x, w, lo, hi, trials, d, m, qs, pick);
    if (qa && n == 16) return best_codes8_body<16>(x, w, 0, hi, trials, d, m, qa, pick);
    if (qa && n == 32) return best_codes8_body<32>(x, w, 0, hi, trials, d, m, qa, pick);
    throw std::logic_error("best codes for 16 blocks: blocks of 16 or 32 only");
}

void best_pair(const float* x, const float* w, int n, int hi, int trials, const float* d, const float* m, int* pick) {
    if (n == 16) return best_pair8_body<16>(x, w, hi, trials, d, m, pick);
    if (n == 32) return best_pair8_body<32>(x, w, hi, trials, d, m, pick);
    throw std::logic_error("best pair for 16 blocks: blocks of 16 or 32 only");
}
LANES16_END
#endif

void fit_symmetric16(const float* x, const float* w, int n, int lo, int hi, int8_t* q, bool f16_scale, Search search, float* scale) {
#ifdef QUANT_WIDE
    if (wide_paths()) return lanes16::fit_symmetric(x, w, n, lo, hi, q, f16_scale, search, scale);
#endif
    for (int h = 0; h < 2; ++h) fit_symmetric8(x + 8 * h * n, w + 8 * h * n, n, lo, hi, q + 8 * h * n, f16_scale, search, scale + 8 * h);
}

void fit_affine16(const float* x, const float* w, int n, int hi, uint8_t* q, bool f16_params, bool non_positive_offset, Search search, float* d,
                  float* m) {
#ifdef QUANT_WIDE
    if (wide_paths()) return lanes16::fit_affine(x, w, n, hi, q, f16_params, non_positive_offset, search, d, m);
#endif
    for (int h = 0; h < 2; ++h)
        fit_affine8(x + 8 * h * n, w + 8 * h * n, n, hi, q + 8 * h * n, f16_params, non_positive_offset, search, d + 8 * h, m + 8 * h);
}

void half_of(const float* in, int trials, int h, float* out) {
    for (int t = 0; t < trials; ++t)
        for (int j = 0; j < 8; ++j) out[t * 8 + j] = in[t * 16 + 8 * h + j];
}

void best_symmetric_codes16(const float* x, const float* w, int n, int lo, int hi, int trials, const float* d, int8_t* q, int* pick) {
    if (trials > 8) throw std::logic_error("best_symmetric_codes16: more than 8 trials");
#ifdef QUANT_WIDE
    const float offsets[8 * 16] = {};
    if (wide_paths()) return lanes16::best_codes(x, w, n, lo, hi, trials, d, offsets, q, nullptr, pick);
#endif
    for (int h = 0; h < 2; ++h) {
        float dh[8 * 8];
        half_of(d, trials, h, dh);
        best_symmetric_codes8(x + 8 * h * n, w + 8 * h * n, n, lo, hi, trials, dh, q + 8 * h * n, pick + 8 * h);
    }
}

void best_affine_codes16(const float* x, const float* w, int n, int hi, int trials, const float* d, const float* m, uint8_t* q, int* pick) {
    if (trials > 16) throw std::logic_error("best_affine_codes16: more than 16 trials");
#ifdef QUANT_WIDE
    if (wide_paths()) return lanes16::best_codes(x, w, n, 0, hi, trials, d, m, nullptr, q, pick);
#endif
    for (int h = 0; h < 2; ++h) {
        float dh[16 * 8], mh[16 * 8];
        half_of(d, trials, h, dh);
        half_of(m, trials, h, mh);
        best_affine_codes8(x + 8 * h * n, w + 8 * h * n, n, hi, trials, dh, mh, q + 8 * h * n, pick + 8 * h);
    }
}

void best_affine_pair16(const float* x, const float* w, int n, int hi, int trials, const float* d, const float* m, int* pick) {
    if (trials > kMaxPairTrials) throw std::logic_error("best_affine_pair16: more than kMaxPairTrials trials");
#ifdef QUANT_WIDE
    if (wide_paths()) return lanes16::best_pair(x, w, n, hi, trials, d, m, pick);
#endif
    for (int h = 0; h < 2; ++h) {
        float dh[kMaxPairTrials * 8], mh[kMaxPairTrials * 8];
        half_of(d, trials, h, dh);
        half_of(m, trials, h, mh);
        best_affine_pair8(x + 8 * h * n, w + 8 * h * n, n, hi, trials, dh, mh, pick + 8 * h);
    }
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
                                                    bool f16_scale, LevelStarts starts) {
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
        for (int step = -starts.larger; step <= starts.smaller; ++step) {
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

QUANT_AVX2_CLONE float fit_levels(const float* x, const float* w, int n, const Levels& levels, uint8_t* index, bool f16_scale, LevelStarts starts) {
    return n == 32 ? fit_levels_body(x, w, 32, levels, index, f16_scale, starts) : fit_levels_body(x, w, n, levels, index, f16_scale, starts);
}

namespace {

#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wpsabi"

namespace lanes8 {
#include "fit_levels_lanes.inc"  // level_pass8, fit_levels8_body, best_level_codes8_body
}  // namespace lanes8
#pragma GCC diagnostic pop

}  // namespace

QUANT_AVX2_CLONE void fit_levels8(const float* x, const float* w, int n, const Levels& levels, uint8_t* index, bool f16_scale, float* scale,
                                  LevelStarts starts) {
    const LevelSteps ls(levels);
    if (n == 32 && ls.steps < LevelSteps::kMax)
        return f16_scale ? fit_levels8_body<32, true>(x, w, levels, ls, index, scale, starts)
                         : fit_levels8_body<32, false>(x, w, levels, ls, index, scale, starts);
    for (int j = 0; j < kLanes; ++j) scale[j] = fit_levels_body(x + j * n, w + j * n, n, levels, index + j * n, f16_scale, starts);
}

QUANT_AVX2_CLONE void best_level_codes8(const float* x, const float* w, int n, const Levels& levels, int trials, const float* d, uint8_t* index,
                                        int* pick) {
    const LevelSteps ls(levels);
    if (n != 32 || ls.steps >= LevelSteps::kMax) throw std::logic_error("best_level_codes8: blocks of 32 and codebooks of up to 16 levels only");
    best_level_codes8_body<32>(x, w, levels, ls, trials, d, index, pick);
}

#ifdef QUANT_WIDE
LANES16_BEGIN
#include "fit_levels_lanes.inc"

void fit_levels(const float* x, const float* w, int n, const Levels& levels, const LevelSteps& ls, uint8_t* index, bool f16_scale, float* scale,
                LevelStarts starts) {
    if (n == 32 && ls.steps < LevelSteps::kMax)
        return f16_scale ? fit_levels8_body<32, true>(x, w, levels, ls, index, scale, starts)
                         : fit_levels8_body<32, false>(x, w, levels, ls, index, scale, starts);
    for (int j = 0; j < kLanes; ++j) scale[j] = fit_levels_body(x + j * n, w + j * n, n, levels, index + j * n, f16_scale, starts);
}

void best_level_codes(const float* x, const float* w, const Levels& levels, const LevelSteps& ls, int trials, const float* d, uint8_t* index,
                      int* pick) {
    best_level_codes8_body<32>(x, w, levels, ls, trials, d, index, pick);
}
LANES16_END
#endif

void fit_levels16(const float* x, const float* w, int n, const Levels& levels, uint8_t* index, bool f16_scale, float* scale, LevelStarts starts) {
#ifdef QUANT_WIDE
    if (wide_paths()) return lanes16::fit_levels(x, w, n, levels, LevelSteps(levels), index, f16_scale, scale, starts);
#endif
    for (int h = 0; h < 2; ++h) fit_levels8(x + 8 * h * n, w + 8 * h * n, n, levels, index + 8 * h * n, f16_scale, scale + 8 * h, starts);
}

void best_level_codes16(const float* x, const float* w, int n, const Levels& levels, int trials, const float* d, uint8_t* index, int* pick) {
    if (trials > 8) throw std::logic_error("best_level_codes16: more than 8 trials");
#ifdef QUANT_WIDE
    if (wide_paths()) {
        const LevelSteps ls(levels);
        if (n != 32 || ls.steps >= LevelSteps::kMax) throw std::logic_error("best_level_codes16: blocks of 32 and codebooks of up to 16 levels only");
        return lanes16::best_level_codes(x, w, levels, ls, trials, d, index, pick);
    }
#endif
    for (int h = 0; h < 2; ++h) {
        float dh[8 * 8];
        half_of(d, trials, h, dh);
        best_level_codes8(x + 8 * h * n, w + 8 * h * n, n, levels, trials, dh, index + 8 * h * n, pick + 8 * h);
    }
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

bool g_importance_square_root = false;

const float* block_weights(const float* x, const float* importance, int n, float sigma2, float* out) {
    if (!importance || g_importance_square_root)
        for (int i = 0; i < n; ++i) out[i] = (importance ? importance[i] : 1.0f) * std::sqrt(sigma2 + x[i] * x[i]);
    else
        for (int i = 0; i < n; ++i) out[i] = importance[i] * std::sqrt(std::sqrt(sigma2 + x[i] * x[i]));
    return out;
}

}  // namespace quant::detail

void quant::testing::importance_square_root(bool on) { detail::g_importance_square_root = on; }

bool quant::testing::use_avx512(bool on) {
    detail::g_wide_paths = on && detail::kCpuAvx512;
    return detail::g_wide_paths;
}
