// The k-quants: super-blocks of 256 values in sub-blocks of 16 or 32, each sub-block with
// its own scale (and minimum) stored in a few bits, scaled again by the block's f16 d (and
// dmin).
#include <algorithm>
#include <limits>

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
// at a time).

constexpr int kSuper = 256;

// Affine kinds (Q2_K, Q4_K, Q5_K): value = d x sc x q - dmin x mn. kSteps: the sub-block
// fits' starting scales either side of the obvious one (Search, fit.h).
struct AffineFit {
    float d = 0, dmin = 0;
    uint8_t sc[16] = {}, mn[16] = {};
    uint8_t q[kSuper] = {};
};

template <int kSub, int kQmax, int kScaleMax, int kSteps>
AffineFit fit_affine_k(const float* x, const float* w) {
    constexpr int kSubs = kSuper / kSub;
    AffineFit f;
    float scale[kSubs], minimum[kSubs], scale_weight[kSubs], min_weight[kSubs];
    for (int j = 0; j < kSubs; ++j) {
        const float* xj = x + j * kSub;
        const float* wj = w + j * kSub;
        float d, m;
        fit_affine(xj, wj, kSub, kQmax, f.q + j * kSub, d, m, false, true, Search{kSteps, 2});
        scale[j] = std::max(d, 0.0f);
        minimum[j] = -m;
        scale_weight[j] = min_weight[j] = 0;
        for (int i = 0; i < kSub; ++i) {
            const float qi = f.q[j * kSub + i];
            scale_weight[j] += wj[i] * qi * qi;
            min_weight[j] += wj[i];
        }
    }
    int8_t sc[kSubs], mn[kSubs];
    f.d = fit_symmetric(scale, scale_weight, kSubs, 0, kScaleMax, sc);
    f.dmin = fit_symmetric(minimum, min_weight, kSubs, 0, kScaleMax, mn);
    uint8_t trial[kSub];
    for (int j = 0; j < kSubs; ++j) {
        float best = std::numeric_limits<float>::infinity();
        for (int a = -1; a <= 1; ++a)
            for (int b = -1; b <= 1; ++b) {
                if (a != 0 && b != 0) continue;  // one code at a time: the corners never paid off
                const int s = std::clamp(sc[j] + a, 0, kScaleMax), m = std::clamp(mn[j] + b, 0, kScaleMax);
                const float dl = f.d * static_cast<float>(s), ml = f.dmin * static_cast<float>(m);
                const float err = affine_codes(x + j * kSub, w + j * kSub, kSub, kQmax, dl, -ml, trial);
                if (err < best) {
                    best = err;
                    f.sc[j] = static_cast<uint8_t>(s);
                    f.mn[j] = static_cast<uint8_t>(m);
                    std::copy(trial, trial + kSub, f.q + j * kSub);
                }
            }
    }
    return f;
}

// Symmetric kinds (Q3_K, Q6_K): value = d x sc x q, sc and q signed.
struct SymmetricFit {
    float d = 0;
    int8_t sc[16] = {};
    int8_t q[kSuper] = {};
};

template <int kSub, int kLo, int kHi, int kScaleLo, int kScaleHi, int kSteps>
SymmetricFit fit_symmetric_k(const float* x, const float* w) {
    constexpr int kSubs = kSuper / kSub;
    SymmetricFit f;
    float scale[kSubs], scale_weight[kSubs];
    for (int j = 0; j < kSubs; ++j) {
        scale[j] = fit_symmetric(x + j * kSub, w + j * kSub, kSub, kLo, kHi, f.q + j * kSub, false, Search{kSteps, 2});
        scale_weight[j] = 0;
        for (int i = 0; i < kSub; ++i) scale_weight[j] += w[j * kSub + i] * static_cast<float>(f.q[j * kSub + i] * f.q[j * kSub + i]);
    }
    int8_t sc[kSubs];
    f.d = fit_symmetric(scale, scale_weight, kSubs, kScaleLo, kScaleHi, sc);
    int8_t trial[kSub];
    for (int j = 0; j < kSubs; ++j) {
        float best = std::numeric_limits<float>::infinity();
        for (int a = -1; a <= 1; ++a) {
            const int s = std::clamp(sc[j] + a, kScaleLo, kScaleHi);
            const float err = symmetric_codes(x + j * kSub, w + j * kSub, kSub, kLo, kHi, f.d * static_cast<float>(s), trial);
            if (err < best) {
                best = err;
                f.sc[j] = static_cast<int8_t>(s);
                std::copy(trial, trial + kSub, f.q + j * kSub);
            }
        }
    }
    return f;
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

void quantize_q2_k(const float* x, uint8_t* dst, int64_t n, const float* imp) {
    quantize_blocks<BlockQ2_K, kSuper>(x, dst, n, imp, [](const float* xb, const float* w, BlockQ2_K& b) {
        const AffineFit f = fit_affine_k<16, 3, 15, 1>(xb, w);
        store_half(b.d, f.d);
        store_half(b.dmin, f.dmin);
        for (int j = 0; j < 16; ++j) b.scales[j] = static_cast<uint8_t>(f.sc[j] | f.mn[j] << 4);
        std::fill(b.qs, b.qs + 64, 0);
        for (int i = 0; i < kSuper; ++i) {  // value 128h + 32s + l: bits 2s of qs[32h + l]
            const int h = i / 128, s = (i % 128) / 32, l = i % 32;
            b.qs[32 * h + l] |= static_cast<uint8_t>(f.q[i] << (2 * s));
        }
    });
}

void quantize_q3_k(const float* x, uint8_t* dst, int64_t n, const float* imp) {
    quantize_blocks<BlockQ3_K, kSuper>(x, dst, n, imp, [](const float* xb, const float* w, BlockQ3_K& b) {
        const SymmetricFit f = fit_symmetric_k<16, -4, 3, -32, 31, 1>(xb, w);
        store_half(b.d, f.d);
        std::fill(b.scales, b.scales + 12, 0);
        for (int i = 0; i < 16; ++i) {
            const int s = f.sc[i] + 32;
            b.scales[i < 8 ? i : i - 8] |= static_cast<uint8_t>(i < 8 ? (s & 0x0f) : (s & 0x0f) << 4);
            b.scales[8 + i % 4] |= static_cast<uint8_t>((s >> 4) << (2 * (i / 4)));
        }
        std::fill(b.qs, b.qs + 64, 0);
        std::fill(b.hmask, b.hmask + 32, 0);
        for (int i = 0; i < kSuper; ++i) {  // L = q + 4: low 2 bits in the qs planes, bit 2 in hmask
            const int h = i / 128, s = (i % 128) / 32, l = i % 32, code = f.q[i] + 4;
            b.qs[32 * h + l] |= static_cast<uint8_t>((code & 3) << (2 * s));
            b.hmask[l] |= static_cast<uint8_t>((code >> 2) << (4 * h + s));
        }
    });
}

template <class Block, int kQmax>
void quantize_k4(const float* x, uint8_t* dst, int64_t n, const float* imp) {
    quantize_blocks<Block, kSuper>(x, dst, n, imp, [](const float* xb, const float* w, Block& b) {
        const AffineFit f = fit_affine_k<32, kQmax, 63, kQmax == 31 ? 0 : 1>(xb, w);
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

void quantize_q6_k(const float* x, uint8_t* dst, int64_t n, const float* imp) {
    quantize_blocks<BlockQ6_K, kSuper>(x, dst, n, imp, [](const float* xb, const float* w, BlockQ6_K& b) {
        const SymmetricFit f = fit_symmetric_k<16, -32, 31, -128, 127, 0>(xb, w);
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

}  // namespace

void register_kquants(TraitsTable& t) {
    using K = ScaleKind;
    add_block_type<BlockQ2_K>(t, quantize_q2_k, {{K::F16, offsetof(BlockQ2_K, d), "d"}, {K::F16, offsetof(BlockQ2_K, dmin), "dmin"}});
    add_block_type<BlockQ3_K>(t, quantize_q3_k, {{K::F16, offsetof(BlockQ3_K, d), "d"}});
    add_block_type<BlockQ4_K>(t, quantize_k4<BlockQ4_K, 15>, {{K::F16, offsetof(BlockQ4_K, d), "d"}, {K::F16, offsetof(BlockQ4_K, dmin), "dmin"}});
    add_block_type<BlockQ5_K>(t, quantize_k4<BlockQ5_K, 31>, {{K::F16, offsetof(BlockQ5_K, d), "d"}, {K::F16, offsetof(BlockQ5_K, dmin), "dmin"}});
    add_block_type<BlockQ6_K>(t, quantize_q6_k, {{K::F16, offsetof(BlockQ6_K, d), "d"}});
    // The activation format of dot products (kernels/ quantizes to it): read, not written here.
    add_block_type<BlockQ8_K>(t, nullptr, {{K::F32, offsetof(BlockQ8_K, d), "d"}});
}

}  // namespace quant::detail
