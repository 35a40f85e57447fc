// The k-quants: super-blocks of 256 values in sub-blocks of 16 or 32, each sub-block with
// its own scale (and minimum) stored in a few bits, scaled again by the block's f16 d (and
// dmin).
#include <algorithm>
#include <limits>

#include "bytes.h"
#include "family.h"
#include "fit.h"

namespace quant::detail {

// Q2_K: 16 sub-blocks of 16. scales[i]: low nibble the sub-block's scale, high nibble its
// minimum; value = d x scale x q - dmin x min, q a 2-bit code. qs holds the codes of each
// half (128 values) as four 2-bit planes of 32 bytes.
struct BlockQ2_K {
    uint8_t scales[16];
    uint8_t qs[64];
    uint8_t d[2];
    uint8_t dmin[2];
};
static_assert(sizeof(BlockQ2_K) == 84);

// Q3_K: 16 sub-blocks of 16, 6-bit signed scales (stored minus 32) packed into 12 bytes;
// value = d x (scale - 32) x (q - 4 if the code's hmask bit is clear else q), q 2 bits
// laid out as in Q2_K.
struct BlockQ3_K {
    uint8_t hmask[32];
    uint8_t qs[64];
    uint8_t scales[12];
    uint8_t d[2];
};
static_assert(sizeof(BlockQ3_K) == 110);

// Q4_K: 8 sub-blocks of 32 with 6-bit scales and minimums packed into 12 bytes;
// value = d x scale x q - dmin x min, q 4 bits: each 64 values are the low nibbles then the
// high nibbles of 32 bytes.
struct BlockQ4_K {
    uint8_t d[2];
    uint8_t dmin[2];
    uint8_t scales[12];
    uint8_t qs[128];
};
static_assert(sizeof(BlockQ4_K) == 144);

// Q5_K: as Q4_K with a fifth bit per value in qh: bit 2k of qh[l] for value l of the k-th
// 64, low nibble half; bit 2k + 1 for the high nibble half.
struct BlockQ5_K {
    uint8_t d[2];
    uint8_t dmin[2];
    uint8_t scales[12];
    uint8_t qh[32];
    uint8_t qs[128];
};
static_assert(sizeof(BlockQ5_K) == 176);

// Q6_K: 16 sub-blocks of 16 with signed 8-bit scales; value = d x scale x (q - 32), q 6
// bits: low 4 in ql, high 2 in qh.
struct BlockQ6_K {
    uint8_t ql[128];
    uint8_t qh[64];
    int8_t scales[16];
    uint8_t d[2];
};
static_assert(sizeof(BlockQ6_K) == 210);

namespace {

void dequantize_q2_k(const uint8_t* src, float* y, int64_t n) {
    for (const BlockQ2_K* b = blocks<BlockQ2_K>(src); n-- > 0; ++b) {
        const float d = half(b->d), dmin = half(b->dmin);
        const uint8_t* q = b->qs;
        int sub = 0;
        for (int half_block = 0; half_block < 2; ++half_block, q += 32) {
            for (int shift = 0; shift < 8; shift += 2) {
                for (int part = 0; part < 2; ++part) {  // two sub-blocks of 16 per 2-bit plane
                    const uint8_t sc = b->scales[sub++];
                    const float dl = d * static_cast<float>(sc & 0x0f), ml = dmin * static_cast<float>(sc >> 4);
                    for (int l = 0; l < 16; ++l) *y++ = dl * static_cast<float>((q[l + 16 * part] >> shift) & 3) - ml;
                }
            }
        }
    }
}

// The sixteen 6-bit Q3_K scales: bytes 0-7 hold their low nibbles (scales 0-7 in the low
// halves, 8-15 in the high halves), bytes 8-11 their top two bits (scale i's in bits
// 2 x (i / 4) of byte 8 + i % 4).
void q3_k_scales(const uint8_t* packed, int (&out)[16]) {
    for (int i = 0; i < 16; ++i) {
        const int low = i < 8 ? packed[i] & 0x0f : packed[i - 8] >> 4;
        const int high = (packed[8 + i % 4] >> (2 * (i / 4))) & 3;
        out[i] = (low | high << 4) - 32;
    }
}

void dequantize_q3_k(const uint8_t* src, float* y, int64_t n) {
    for (const BlockQ3_K* b = blocks<BlockQ3_K>(src); n-- > 0; ++b) {
        const float d = half(b->d);
        int scales[16];
        q3_k_scales(b->scales, scales);
        const uint8_t* q = b->qs;
        uint8_t mask = 1;
        int sub = 0;
        for (int half_block = 0; half_block < 2; ++half_block, q += 32) {
            for (int shift = 0; shift < 8; shift += 2, mask = static_cast<uint8_t>(mask << 1)) {
                for (int part = 0; part < 2; ++part) {
                    const float dl = d * static_cast<float>(scales[sub++]);
                    for (int l = 16 * part; l < 16 * part + 16; ++l) {
                        const int code = ((q[l] >> shift) & 3) - ((b->hmask[l] & mask) ? 0 : 4);
                        *y++ = dl * static_cast<float>(code);
                    }
                }
            }
        }
    }
}

// Scale and minimum j (0-7) of a Q4_K or Q5_K block: 6 bits each. For j < 4 they are the
// low 6 bits of bytes j and j + 4; for j >= 4 the low (scale) or high (min) nibble of byte
// j + 4, topped with the two high bits of byte j - 4 (scale) or j (min).
inline void scale_min_k4(int j, const uint8_t* q, uint8_t& scale, uint8_t& min) {
    if (j < 4) {
        scale = q[j] & 63;
        min = q[j + 4] & 63;
    } else {
        scale = static_cast<uint8_t>((q[j + 4] & 0x0f) | ((q[j - 4] >> 6) << 4));
        min = static_cast<uint8_t>((q[j + 4] >> 4) | ((q[j] >> 6) << 4));
    }
}

// Q4_K and Q5_K share everything but the fifth bit; qh is nullptr for Q4_K.
inline void dequantize_k4(float d, float dmin, const uint8_t* scales, const uint8_t* qs, const uint8_t* qh, float* y) {
    for (int chunk = 0; chunk < 4; ++chunk, qs += 32) {  // 64 values: 32 low nibbles, then 32 high
        for (int nibble = 0; nibble < 2; ++nibble) {
            uint8_t sc, m;
            scale_min_k4(2 * chunk + nibble, scales, sc, m);
            const float dl = d * static_cast<float>(sc), ml = dmin * static_cast<float>(m);
            const uint8_t bit = static_cast<uint8_t>(1u << (2 * chunk + nibble));
            for (int l = 0; l < 32; ++l) {
                int q = nibble ? qs[l] >> 4 : qs[l] & 0x0f;
                if (qh && (qh[l] & bit)) q += 16;
                *y++ = dl * static_cast<float>(q) - ml;
            }
        }
    }
}

void dequantize_q4_k(const uint8_t* src, float* y, int64_t n) {
    for (const BlockQ4_K* b = blocks<BlockQ4_K>(src); n-- > 0; ++b, y += 256)
        dequantize_k4(half(b->d), half(b->dmin), b->scales, b->qs, nullptr, y);
}

void dequantize_q5_k(const uint8_t* src, float* y, int64_t n) {
    for (const BlockQ5_K* b = blocks<BlockQ5_K>(src); n-- > 0; ++b, y += 256)
        dequantize_k4(half(b->d), half(b->dmin), b->scales, b->qs, b->qh, y);
}

void dequantize_q6_k(const uint8_t* src, float* y, int64_t n) {
    for (const BlockQ6_K* b = blocks<BlockQ6_K>(src); n-- > 0; ++b) {
        const float d = half(b->d);
        const uint8_t* ql = b->ql;
        const uint8_t* qh = b->qh;
        const int8_t* sc = b->scales;
        for (int half_block = 0; half_block < 2; ++half_block, ql += 64, qh += 32, sc += 8, y += 128) {
            for (int l = 0; l < 32; ++l) {
                const int is = l / 16;
                const int q1 = ((ql[l] & 0x0f) | ((qh[l] & 3) << 4)) - 32;
                const int q2 = ((ql[l + 32] & 0x0f) | (((qh[l] >> 2) & 3) << 4)) - 32;
                const int q3 = ((ql[l] >> 4) | (((qh[l] >> 4) & 3) << 4)) - 32;
                const int q4 = ((ql[l + 32] >> 4) | (((qh[l] >> 6) & 3) << 4)) - 32;
                y[l] = d * static_cast<float>(sc[is]) * static_cast<float>(q1);
                y[l + 32] = d * static_cast<float>(sc[is + 2]) * static_cast<float>(q2);
                y[l + 64] = d * static_cast<float>(sc[is + 4]) * static_cast<float>(q3);
                y[l + 96] = d * static_cast<float>(sc[is + 6]) * static_cast<float>(q4);
            }
        }
    }
}

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
    set_type(t, TypeId::Q2_K, dequantize_q2_k, quantize_q2_k);
    set_type(t, TypeId::Q3_K, dequantize_q3_k, quantize_q3_k);
    set_type(t, TypeId::Q4_K, dequantize_q4_k, quantize_k4<BlockQ4_K, 15>);
    set_type(t, TypeId::Q5_K, dequantize_q5_k, quantize_k4<BlockQ5_K, 31>);
    set_type(t, TypeId::Q6_K, dequantize_q6_k, quantize_q6_k);
    using K = ScaleKind;
    set_scales(t, TypeId::Q2_K, {{K::F16, offsetof(BlockQ2_K, d), "d"}, {K::F16, offsetof(BlockQ2_K, dmin), "dmin"}});
    set_scales(t, TypeId::Q3_K, {{K::F16, offsetof(BlockQ3_K, d), "d"}});
    set_scales(t, TypeId::Q4_K, {{K::F16, offsetof(BlockQ4_K, d), "d"}, {K::F16, offsetof(BlockQ4_K, dmin), "dmin"}});
    set_scales(t, TypeId::Q5_K, {{K::F16, offsetof(BlockQ5_K, d), "d"}, {K::F16, offsetof(BlockQ5_K, dmin), "dmin"}});
    set_scales(t, TypeId::Q6_K, {{K::F16, offsetof(BlockQ6_K, d), "d"}});
    set_scales(t, TypeId::Q8_K, {{K::F32, 0, "d"}});  // dot-product helper layout: f32 d, 256 i8, 16 i16 sums
}

}  // namespace quant::detail
