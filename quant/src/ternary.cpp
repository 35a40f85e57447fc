// Ternary and 1-2 bit formats: TQ1_0, TQ2_0 (values -d, 0, +d), Q1_0 (+-d), Q2_0.
#include <algorithm>
#include <cmath>

#include "bytes.h"
#include "family.h"
#include "fit.h"

namespace quant::detail {

namespace {

// Ternary codebook: -d, 0, +d stored as codes 0, 1, 2 (code - 1).
constexpr float kTernaryValues[3] = {-1, 0, 1};
constexpr uint8_t kTernaryCodes[3] = {0, 1, 2};
constexpr Levels kTernary = {kTernaryValues, kTernaryCodes, 3};

// Fits each block of `block` values with a ternary codebook and an f16 d; `pack` stores it.
template <class Block, int kBlock, class Pack>
void quantize_ternary(const float* x, uint8_t* dst, int64_t n, const float* imp, Pack pack) {
    quantize_blocks<Block, kBlock>(x, dst, n, imp, [&](const float* xb, const float* w, Block& b) {
        uint8_t code[kBlock];
        store_half(b.d, fit_levels(xb, w, kBlock, kTernary, code, true));
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
