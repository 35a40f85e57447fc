#include "fit.h"

#include <cmath>
#include <limits>

#include "quant/quant.h"

namespace quant::detail {

float as_stored_f16(float v) { return f16_to_f32(f32_to_f16(v)); }

namespace {

inline float weight(const float* w, int i) { return w ? w[i] : 1.0f; }

// Starting scales: the largest value sent to the end code +- kSteps x kSpacing codes; from
// each, rounds of (least-squares refit, code reassignment). Measured on
// ../shared/ref/quant (bench_quant, the rmse.tsv test): 2 x 0.5 is within 0.1% of the
// quality of 9 x 0.1 at under a third of the time.
constexpr int kSteps = 2;
constexpr float kSpacing = 0.5f;
constexpr int kRefineRounds = 3;

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

// Codes for scale d, and the weighted squared error they leave.
}  // namespace

float symmetric_codes(const float* x, const float* w, int n, int lo, int hi, float d, int8_t* q) {
    const Divider over(d);
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

float fit_symmetric(const float* x, const float* w, int n, int lo, int hi, int8_t* q, bool f16_scale) {
    auto stored = [f16_scale](float v) { return f16_scale ? as_stored_f16(finite_f16(v)) : v; };
    float xmax = 0;
    for (int i = 0; i < n; ++i)
        if (std::fabs(x[i]) > std::fabs(xmax)) xmax = x[i];
    if (xmax == 0) {
        for (int i = 0; i < n; ++i) q[i] = 0;
        return 0.0f;
    }
    int8_t trial[256];
    float best_err = std::numeric_limits<float>::infinity(), best_d = 0;
    for (int target : {lo, hi}) {
        for (int step = -kSteps; step <= kSteps; ++step) {
            const float t = static_cast<float>(target) + kSpacing * static_cast<float>(step) * (target < 0 ? -1.0f : 1.0f);
            if (t == 0) continue;
            float d = stored(xmax / t);
            float err = symmetric_codes(x, w, n, lo, hi, d, trial);
            if (err < best_err) {
                best_err = err;
                best_d = d;
            }
            // Alternate: weighted least squares for these codes, then the codes for that scale.
            for (int round = 0; round < kRefineRounds; ++round) {
                float sxq = 0, sqq = 0;
                for (int i = 0; i < n; ++i) {
                    sxq += weight(w, i) * x[i] * static_cast<float>(trial[i]);
                    sqq += weight(w, i) * static_cast<float>(trial[i]) * static_cast<float>(trial[i]);
                }
                if (sqq <= 0) break;
                const float refit = stored(sxq / sqq);
                if (refit == d) break;
                d = refit;
                err = symmetric_codes(x, w, n, lo, hi, d, trial);
                if (err < best_err) {
                    best_err = err;
                    best_d = d;
                }
            }
        }
    }
    symmetric_codes(x, w, n, lo, hi, best_d, q);
    return best_d;
}

float affine_codes(const float* x, const float* w, int n, int hi, float d, float m, uint8_t* q) {
    const Divider over(d);
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

void fit_affine(const float* x, const float* w, int n, int hi, uint8_t* q, float& d_out, float& m_out, bool f16_params,
                bool non_positive_offset) {
    float lo_v = x[0], hi_v = x[0];
    for (int i = 1; i < n; ++i) {
        lo_v = std::fmin(lo_v, x[i]);
        hi_v = std::fmax(hi_v, x[i]);
    }
    if (non_positive_offset) lo_v = std::fmin(lo_v, 0.0f);
    auto stored = [f16_params](float v) { return f16_params ? as_stored_f16(finite_f16(v)) : v; };
    uint8_t trial[256];
    float best_err = std::numeric_limits<float>::infinity(), best_d = 0, best_m = stored(lo_v);
    if (hi_v == lo_v) {
        best_d = 0;
    } else {
        for (int step = -kSteps; step <= kSteps; ++step) {
            float d = stored((hi_v - lo_v) / (static_cast<float>(hi) + kSpacing * static_cast<float>(step)));
            float m = stored(lo_v);
            float err = affine_codes(x, w, n, hi, d, m, trial);
            if (err < best_err) {
                best_err = err;
                best_d = d;
                best_m = m;
            }
            // Alternate: weighted least squares for d and m together, then the codes for them.
            for (int round = 0; round < kRefineRounds; ++round) {
                double sw = 0, sq = 0, sqq = 0, sx = 0, sxq = 0;
                for (int i = 0; i < n; ++i) {
                    const double wi = weight(w, i), qi = trial[i];
                    sw += wi; sq += wi * qi; sqq += wi * qi * qi; sx += wi * x[i]; sxq += wi * x[i] * qi;
                }
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
                err = affine_codes(x, w, n, hi, d, m, trial);
                if (err < best_err) {
                    best_err = err;
                    best_d = d;
                    best_m = m;
                }
            }
        }
    }
    affine_codes(x, w, n, hi, best_d, best_m, q);
    d_out = best_d;
    m_out = best_m;
}

float level_codes(const float* x, const float* w, int n, const Levels& levels, float d, uint8_t* index) {
    const Divider over(d);
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

float fit_levels(const float* x, const float* w, int n, const Levels& levels, uint8_t* index, bool f16_scale) {
    auto stored = [f16_scale](float v) { return f16_scale ? as_stored_f16(finite_f16(v)) : v; };
    float xmax = 0;
    for (int i = 0; i < n; ++i)
        if (std::fabs(x[i]) > std::fabs(xmax)) xmax = x[i];
    if (xmax == 0) {
        level_codes(x, w, n, levels, 0.0f, index);
        return 0.0f;
    }
    uint8_t trial[256];
    float best_err = std::numeric_limits<float>::infinity(), best_d = 0;
    for (float end : {levels.value[0], levels.value[levels.n - 1]}) {
        if (end == 0) continue;
        for (int step = -kSteps; step <= kSteps; ++step) {
            float d = stored(xmax / (end * (1.0f + 0.05f * static_cast<float>(step))));
            float err = level_codes(x, w, n, levels, d, trial);
            for (int round = 0; ; ++round) {
                if (err < best_err) {
                    best_err = err;
                    best_d = d;
                }
                if (round == kRefineRounds) break;
                float sxl = 0, sll = 0;
                for (int i = 0; i < n; ++i) {
                    const float l = levels.value[trial[i]];
                    sxl += weight(w, i) * x[i] * l;
                    sll += weight(w, i) * l * l;
                }
                if (sll <= 0) break;
                const float refit = stored(sxl / sll);
                if (refit == d) break;
                d = refit;
                err = level_codes(x, w, n, levels, d, trial);
            }
        }
    }
    level_codes(x, w, n, levels, best_d, index);
    return best_d;
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
