// Choosing a block's scale (and offset) for given codes: the search that every quantizer
// shares. Internal to quant/.
#pragma once

#include <cstdint>

#include "bytes.h"

// A function compiled three times, for AVX-512, AVX2 and any x86-64, the one to run chosen
// when the library loads (GCC's function multiversioning). Code under it must compute the
// same bits in all three: fixed lane counts and summation orders, no fused multiply-adds
// (-ffp-contract=off).
// quant_portable (QUANT_NO_CLONES) leaves the clones out so a test can compare the bytes.
#if defined(__GNUC__) && !defined(__clang__) && defined(__x86_64__) && !defined(QUANT_NO_CLONES)
#define QUANT_AVX2_CLONE __attribute__((target_clones("avx512f", "avx2", "default")))
#else
#define QUANT_AVX2_CLONE
#endif

namespace quant::detail {

// Whether the AVX-512 paths run: where the CPU has AVX-512 (F, BW, DQ, VL) and the library its
// clones, unless a test turned them off (quant::testing::use_avx512) to compare the bytes of
// the other paths. Set before main; read on every hot call, so a plain bool.
extern bool g_wide_paths;
inline bool wide_paths() { return g_wide_paths; }

// The float an f16 field will hold for v (what dequantization will multiply by).
inline float as_stored_f16(float v) { return half_bits_to_float(float_to_half_bits(v)); }

// How hard the fits below search: starting scales either side of the obvious one, and
// rounds of (least-squares refit, new codes) from each (see fit.cpp). The default suits the
// affine legacy blocks with importance (q4_1, q5_1: less costs them up to 1.5% on the rmse.tsv
// rows; without importance they take {1, 1}, legacy.cpp). The
// symmetric ones (q4_0, q5_0) keep their error with {1, 2}, and so do the k-quants'
// sub-blocks, whose scales are refined again when quantized ({0, 2} for 5- and 6-bit codes),
// in well under half the time.
// With `bound_refits` (symmetric fits only; `rounds` unused) each start's pass is followed
// by no second pass: its least-squares refit d' is judged by the error its codes would have
// at d', err + (d' - d)((d' + d) wqq - 2 wxq) from the pass's own sums, which the nearest codes
// for d' can only lower; one last pass takes the nearest codes for the best scale. Half the
// passes of rounds = 1 for about its error where a refit hardly moves the codes (Q8_0).
struct Search {
    int steps = 2;
    int rounds = 3;
    bool bound_refits = false;
};

// Symmetric: x[i] ~ d x q[i], integers q in [lo, hi], minimizing sum w[i] (x[i] - d q[i])^2
// (w nullptr: all 1) with d as stored in f16. Tries scales that send the largest value to
// lo or hi (and nearby), refits d by weighted least squares for each, and keeps the best.
// Returns d as stored; q holds the codes for it.
// With `f16_scale` false, d stays a float (k-quant sub-block scales).
float fit_symmetric(const float* x, const float* w, int n, int lo, int hi, int8_t* q, bool f16_scale = true,
                    Search search = {});

// Affine: x[i] ~ d x q[i] + m, q in [0, hi]. With `f16_params` d and m are rounded as f16
// fields store them (legacy blocks); without, they stay floats (k-quant sub-blocks, whose
// scales are quantized afterwards). With `non_positive_offset`, m <= 0 (the k-quants store
// -m as an unsigned minimum).
void fit_affine(const float* x, const float* w, int n, int hi, uint8_t* q, float& d, float& m, bool f16_params = true,
                bool non_positive_offset = false, Search search = {});


// Ternary: x[i] ~ d x (code[i] - 1), codes 0, 1, 2 (-d, 0, +d), d as stored in f16, for 4 to
// 256 values: the least weighted error any codes reach with a real d, then the f16 beside that
// d whose nearest codes have less error (ternary.cpp). Returns d.
float fit_ternary(const float* x, const float* w, int n, uint8_t* code);

// The fits for eight blocks of n values at once (x and w: 8 x n values, block after block;
// scale[j]: block j's scale): the bits the one-block calls give, in a fraction of the time
// for the k-quants' sub-blocks (n = 16 and 32, float scales), their super-blocks (n = 8 and
// 16, f16 scales) and the legacy blocks (n = 32, f16 scales).
void fit_symmetric8(const float* x, const float* w, int n, int lo, int hi, int8_t* q, bool f16_scale, Search search, float* scale);
void fit_affine8(const float* x, const float* w, int n, int hi, uint8_t* q, bool f16_params, bool non_positive_offset, Search search, float* d,
                 float* m);
// The same for sixteen blocks (scale, d, m, pick: 16 per trial; up to 8 trials, 16 for the
// affine codes): on AVX-512 one block a lane of one register (wide_paths()), elsewhere two
// eight-block calls; the same bits either way.
void fit_symmetric16(const float* x, const float* w, int n, int lo, int hi, int8_t* q, bool f16_scale, Search search, float* scale);
void fit_affine16(const float* x, const float* w, int n, int hi, uint8_t* q, bool f16_params, bool non_positive_offset, Search search,
                  float* d, float* m);
void best_symmetric_codes16(const float* x, const float* w, int n, int lo, int hi, int trials, const float* d, int8_t* q, int* pick);
void best_affine_codes16(const float* x, const float* w, int n, int hi, int trials, const float* d, const float* m, uint8_t* q, int* pick);
// A 16-block call's candidates (in[t * 16 + j]) as an 8-block call's for blocks 8h..8h+7
// (out[t * 8 + j]).
void half_of(const float* in, int trials, int h, float* out);
// For eight blocks of n = 16 or 32 values and `trials` candidate scales (and offsets) each
// (d[t * 8 + j]: block j's t-th), the first candidate of least error per block (what a loop
// over the candidates keeping the first strictly lower error picks; -1 where no error is a
// number) into pick[j], and its codes into q.
void best_symmetric_codes8(const float* x, const float* w, int n, int lo, int hi, int trials, const float* d, int8_t* q, int* pick);
void best_affine_codes8(const float* x, const float* w, int n, int hi, int trials, const float* d, const float* m, uint8_t* q, int* pick);
// best_affine_codes8's and best_affine_codes16's picks without the codes, for up to
// kMaxPairTrials trials (d, m: trials x 8 or x 16): one pass of the error per trial, no copy
// of codes.
constexpr int kMaxPairTrials = 256;
void best_affine_pair8(const float* x, const float* w, int n, int hi, int trials, const float* d, const float* m, int* pick);
void best_affine_pair16(const float* x, const float* w, int n, int hi, int trials, const float* d, const float* m, int* pick);

// A codebook: the values a code can stand for, ascending, and the code stored for each.
struct Levels {
    const float* value;
    const uint8_t* code;
    int n;
};

// Codes for x[i] ~ d x level: the nearest level to each x[i] / d (its index in `levels`),
// and the weighted squared error left.
float level_codes(const float* x, const float* w, int n, const Levels& levels, float d, uint8_t* index);

// The codebook fits' starting scales: the largest value sent to each end level, and up to
// `larger` / `smaller` steps of 5% to larger / smaller scales from there, each refitted up to
// three times. IQ4_NL and IQ4_XS take three steps to larger scales (kIQ4Starts in
// iquants.cpp).
struct LevelStarts {
    int larger = 2, smaller = 2;
};

// The best d for a codebook, searched as fit_symmetric does from `starts`; d stored as f16
// when `f16_scale`, else a float. `index` gets the level indices.
float fit_levels(const float* x, const float* w, int n, const Levels& levels, uint8_t* index, bool f16_scale, LevelStarts starts = {});

// fit_levels and a best-of-trials level_codes for eight blocks at once, as fit_symmetric8
// and best_symmetric_codes8 (the bits of one block at a time; n = 32 on lanes).
void fit_levels8(const float* x, const float* w, int n, const Levels& levels, uint8_t* index, bool f16_scale, float* scale, LevelStarts starts = {});
void best_level_codes8(const float* x, const float* w, int n, const Levels& levels, int trials, const float* d, uint8_t* index, int* pick);
// And for sixteen blocks (as fit_symmetric16).
void fit_levels16(const float* x, const float* w, int n, const Levels& levels, uint8_t* index, bool f16_scale, float* scale, LevelStarts starts = {});
void best_level_codes16(const float* x, const float* w, int n, const Levels& levels, int trials, const float* d, uint8_t* index, int* pick);

// The best of `count` given scales (formats whose scale is a small float or a power of 2).
// Returns its position in `scales`.
int pick_scale(const float* x, const float* w, int n, const Levels& levels, const float* scales, int count, uint8_t* index);

// For tests: g (1 to 16) super-blocks of 256 values of an affine k-quant, qmax 3 (Q2_K), 15
// (Q4_K) or 31 (Q5_K), fitted with the default starting scales and no refit, then `rounds` of
// the super-block refit (kquants.cpp, refit_super_scales); before[b] and after[b]: super-block
// b's weighted squared error (as dequantization forms its values) around the refit.
void refit_errors_for_test(int qmax, const float* x, const float* w, int g, int rounds, double* before, double* after);

// For tests: one super-block of an affine k-quant as fitted (values d sc q - dmin mn).
struct AffineBlockForTest {
    float d, dmin;
    uint8_t sc[16], mn[16], q[256];
};
// For tests: g (1 to 16) super-blocks of Q2_K (qmax 3) or Q4_K (qmax 15) (x, w: g x 256)
// fitted as quantize_q2_k and quantize_q4_k fit them, by default (best false) or as Q2_K's
// --effort best and Q4_K with an importance matrix fit them (best true): `before` as fitted up
// to its last step, the wide re-pick (kquants.cpp, wide_repick), and `after` it. reach: the
// re-pick's reach, scale code and minimum code.
void affine_repick_for_test(int qmax, bool best, const float* x, const float* w, int g, AffineBlockForTest* before, AffineBlockForTest* after, int reach[2]);

// Weights for a block of n values, sigma2 the row's mean square. Without an importance matrix:
// sqrt(sigma2 + x[i]^2), which favours large values, where most of the error that matters
// sits (outlier channels), without giving up on the rest; measured on ../shared/ref/quant it
// beats both unweighted fits and plain importance weighting on the reference's RMSE and
// importance-weighted RMSE at once. With one: importance[i] x (sigma2 + x[i]^2)^(1/4), on
// every type (Q4_K since 2026-12-05). The importance already favours the columns whose error
// matters; the square root (ggml's form) favoured each large value a second time, away from
// the importance-weighted error. On rmse.tsv's importance rows (2026-12-04) the fourth root's
// weighted RMSE is no higher on any type and lower on every k-quant and i-quant; its plain
// RMSE is lower or equal but on nvfp4 (0.1-0.2% higher). testing::importance_square_root
// makes every type use the square root. Returns out.
const float* block_weights(const float* x, const float* importance, int n, float sigma2, float* out);
extern bool g_importance_square_root;  // testing::importance_square_root

// Quantizes a row block by block: fill(values, weights, block) for each block of kValues
// values, with weights from block_weights (sigma2 the row's mean square).
template <class Block, int kValues, class Fill>
void quantize_blocks(const float* x, uint8_t* dst, int64_t n, const float* importance, Fill fill) {
    const float sigma2 = mean_square(x, n);
    Block* b = blocks<Block>(dst);
    for (int64_t i = 0; i < n; i += kValues, ++b) {
        float w[kValues];
        fill(x + i, block_weights(x + i, importance ? importance + i : nullptr, kValues, sigma2, w), *b);
    }
}

// Groups of sixteen blocks of 32 for the sixteen-block fits: fit(xs, w, g) for each group of
// a row of n values, xs the group's values and w their weights (block_weights with the row's
// mean square, or 1 where `weighted` is false), g the blocks in it (16, or fewer at the row's
// end, whose idle lanes hold copies of the group's first block).
template <class Fit>
void for_each_group16(const float* x, int64_t n, const float* importance, bool weighted, Fit fit) {
    constexpr int kGroup = 16;
    const float sigma2 = weighted ? mean_square(x, n) : 0.0f;
    float xs[kGroup * 32], w[kGroup * 32];
    for (int64_t i = 0; i < n; i += kGroup * 32) {
        const int g = static_cast<int>(n - i >= kGroup * 32 ? kGroup : (n - i) / 32);
        for (int k = 0; k < kGroup; ++k) {
            const int64_t at = i + 32 * (k < g ? k : 0);
            for (int j = 0; j < 32; ++j) xs[32 * k + j] = x[at + j];
            if (weighted) block_weights(x + at, importance ? importance + at : nullptr, 32, sigma2, w + 32 * k);
            else
                for (int j = 0; j < 32; ++j) w[32 * k + j] = 1.0f;
        }
        fit(static_cast<const float*>(xs), static_cast<const float*>(w), g);
    }
}

}  // namespace quant::detail
