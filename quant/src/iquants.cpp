// The i-quants: IQ4_NL and IQ4_XS map 4-bit codes through a non-uniform table; IQ1, IQ2
// and IQ3 store, per group of 8 or 4 values, an index into a grid of magnitude patterns
// (iq_grids.h) with separate signs and scales.
#include <bit>

#include <algorithm>
#include <limits>

#include "bytes.h"
#include "family.h"
#include "fit.h"
#include "grid_fit.h"
#include "iq_grids.h"

namespace quant::detail {

// The 16 levels of IQ4_NL and IQ4_XS codes (ggml's kvalues_iq4nl), denser near zero.
constexpr int8_t kIQ4Levels[16] = {-127, -104, -83, -65, -49, -35, -22, -10, 1, 13, 25, 38, 53, 69, 89, 113};

// IQ4_NL: 32 values, value = d x level(code); codes as Q4_0's nibbles.
struct BlockIQ4_NL {
    uint8_t d[2];
    uint8_t qs[16];
};
static_assert(sizeof(BlockIQ4_NL) == 18);

// IQ4_XS: 256 values in 8 sub-blocks of 32 with 6-bit scales (stored plus 32): low 4 bits
// in the nibbles of scales_l, high 2 bits in scales_h (u16 little-endian, 2 bits per
// sub-block). value = d x (scale - 32) x level(code), codes as IQ4_NL per 32.
struct BlockIQ4_XS {
    uint8_t d[2];
    uint8_t scales_h[2];
    uint8_t scales_l[4];
    uint8_t qs[128];
};
static_assert(sizeof(BlockIQ4_XS) == 136);

// IQ2_XXS: 8 groups of 32 values; each group is 8 bytes: four u8 grid indices (iq2xxs,
// 8 values each) and a u32 whose top 4 bits are the scale s and whose 4 x 7 low bits
// select the signs of each 8 values. value = d x (0.5 + s) / 4 x grid x sign.
struct BlockIQ2_XXS {
    uint8_t d[2];
    uint8_t qs[64];
};
static_assert(sizeof(BlockIQ2_XXS) == 66);

// IQ2_XS: 32 u16 codes (9-bit iq2xs index, 7 sign bits) and a 4-bit scale per 16 values.
struct BlockIQ2_XS {
    uint8_t d[2];
    uint8_t qs[64];
    uint8_t scales[8];
};
static_assert(sizeof(BlockIQ2_XS) == 74);

// IQ2_S: 10-bit iq2s indices (low 8 bits in qs[0..31], high 2 in qh), explicit sign bytes
// (qs[32..63]), a 4-bit scale per 16 values.
struct BlockIQ2_S {
    uint8_t d[2];
    uint8_t qs[64];
    uint8_t qh[8];
    uint8_t scales[8];
};
static_assert(sizeof(BlockIQ2_S) == 82);

// IQ3_XXS: 64 u8 iq3xxs indices (4 values each), then per 32 values a u32 of 4 x 7 sign
// bits and a 4-bit scale s: value = d x (0.5 + s) / 2 x grid x sign.
struct BlockIQ3_XXS {
    uint8_t d[2];
    uint8_t qs[96];
};
static_assert(sizeof(BlockIQ3_XXS) == 98);

// IQ3_S: 9-bit iq3s indices (low 8 in qs, ninth in qh), explicit sign bytes, a 4-bit scale
// per 32 values: value = d x (1 + 2 scale) x grid x sign.
struct BlockIQ3_S {
    uint8_t d[2];
    uint8_t qs[64];
    uint8_t qh[8];
    uint8_t signs[32];
    uint8_t scales[4];
};
static_assert(sizeof(BlockIQ3_S) == 110);

// IQ1_S: per 32 values a u16 qh: 3-bit scale s (bits 12-14), the sign of a shift delta
// (bit 15) and 4 x 3 high index bits; 11-bit iq1s indices select 8 values in {-1, 0, 1}:
// value = d x (2s + 1) x (grid + delta), delta = +-1/8.
struct BlockIQ1_S {
    uint8_t d[2];
    uint8_t qs[32];
    uint8_t qh[16];
};
static_assert(sizeof(BlockIQ1_S) == 50);

// IQ1_M: as IQ1_S with a delta sign per 8 values and two 3-bit scales per 32; the block's
// f16 d is spread over the top nibbles of the four u16 scale words.
struct BlockIQ1_M {
    uint8_t qs[32];
    uint8_t qh[16];
    uint8_t scales[8];
};
static_assert(sizeof(BlockIQ1_M) == 56);

namespace {

constexpr float kIQ1Delta = 0.125f;

// Byte j of a grid entry.
inline uint8_t grid_byte(uint64_t entry, int j) { return static_cast<uint8_t>(entry >> (8 * j)); }

// 7 stored sign bits, completed to 8 by even parity: bit j set makes value j negative.
inline uint8_t signs_from7(uint32_t bits7) {
    return static_cast<uint8_t>(bits7 | (std::popcount(bits7) & 1u) << 7);
}
inline float sign(uint8_t signs, int j) { return signs >> j & 1 ? -1.0f : 1.0f; }

// 8 values from an IQ2 grid entry.
inline void iq2_8(float dl, uint64_t entry, uint8_t signs, float* y) {
    for (int j = 0; j < 8; ++j) y[j] = dl * static_cast<float>(grid_byte(entry, j)) * sign(signs, j);
}

void dequantize_iq2_xxs(const uint8_t* src, float* y, int64_t n) {
    for (const BlockIQ2_XXS* b = blocks<BlockIQ2_XXS>(src); n-- > 0; ++b) {
        const float d = half(b->d);
        for (int ib = 0; ib < 8; ++ib) {
            const uint8_t* idx = b->qs + 8 * ib;
            const uint32_t meta = u32le(idx + 4);
            const float db = d * (0.5f + static_cast<float>(meta >> 28)) * 0.25f;
            for (int l = 0; l < 4; ++l, y += 8) iq2_8(db, grids::kIQ2XXS[idx[l]], signs_from7((meta >> (7 * l)) & 127), y);
        }
    }
}

void dequantize_iq2_xs(const uint8_t* src, float* y, int64_t n) {
    for (const BlockIQ2_XS* b = blocks<BlockIQ2_XS>(src); n-- > 0; ++b) {
        const float d = half(b->d);
        for (int ib = 0; ib < 8; ++ib) {
            const float db[2] = {d * (0.5f + static_cast<float>(b->scales[ib] & 0x0f)) * 0.25f,
                                 d * (0.5f + static_cast<float>(b->scales[ib] >> 4)) * 0.25f};
            for (int l = 0; l < 4; ++l, y += 8) {
                const uint16_t code = u16le(b->qs + 2 * (4 * ib + l));
                iq2_8(db[l / 2], grids::kIQ2XS[code & 511], signs_from7(code >> 9), y);
            }
        }
    }
}

void dequantize_iq2_s(const uint8_t* src, float* y, int64_t n) {
    for (const BlockIQ2_S* b = blocks<BlockIQ2_S>(src); n-- > 0; ++b) {
        const float d = half(b->d);
        for (int ib = 0; ib < 8; ++ib) {
            const float db[2] = {d * (0.5f + static_cast<float>(b->scales[ib] & 0x0f)) * 0.25f,
                                 d * (0.5f + static_cast<float>(b->scales[ib] >> 4)) * 0.25f};
            for (int l = 0; l < 4; ++l, y += 8) {
                const int index = b->qs[4 * ib + l] | ((b->qh[ib] << (8 - 2 * l)) & 0x300);
                iq2_8(db[l / 2], grids::kIQ2S[index], b->qs[32 + 4 * ib + l], y);
            }
        }
    }
}

// 8 values from two IQ3 grid entries of 4.
inline void iq3_8(float dl, uint32_t first, uint32_t second, uint8_t signs, float* y) {
    for (int j = 0; j < 4; ++j) {
        y[j] = dl * static_cast<float>(grid_byte(first, j)) * sign(signs, j);
        y[j + 4] = dl * static_cast<float>(grid_byte(second, j)) * sign(signs, j + 4);
    }
}

void dequantize_iq3_xxs(const uint8_t* src, float* y, int64_t n) {
    for (const BlockIQ3_XXS* b = blocks<BlockIQ3_XXS>(src); n-- > 0; ++b) {
        const float d = half(b->d);
        for (int ib = 0; ib < 8; ++ib) {
            const uint32_t meta = u32le(b->qs + 64 + 4 * ib);
            const float db = d * (0.5f + static_cast<float>(meta >> 28)) * 0.5f;
            const uint8_t* idx = b->qs + 8 * ib;
            for (int l = 0; l < 4; ++l, y += 8)
                iq3_8(db, grids::kIQ3XXS[idx[2 * l]], grids::kIQ3XXS[idx[2 * l + 1]], signs_from7((meta >> (7 * l)) & 127), y);
        }
    }
}

void dequantize_iq3_s(const uint8_t* src, float* y, int64_t n) {
    for (const BlockIQ3_S* b = blocks<BlockIQ3_S>(src); n-- > 0; ++b) {
        const float d = half(b->d);
        for (int ib = 0; ib < 8; ++ib) {
            const int scale = (b->scales[ib / 2] >> (4 * (ib % 2))) & 0x0f;
            const float db = d * static_cast<float>(1 + 2 * scale);
            const uint8_t* idx = b->qs + 8 * ib;
            const uint8_t qh = b->qh[ib];
            for (int l = 0; l < 4; ++l, y += 8) {
                const int first = idx[2 * l] | ((qh << (8 - 2 * l)) & 256);
                const int second = idx[2 * l + 1] | ((qh << (7 - 2 * l)) & 256);
                iq3_8(db, grids::kIQ3S[first], grids::kIQ3S[second], b->signs[4 * ib + l], y);
            }
        }
    }
}

// 8 values from an IQ1 grid entry of signed bytes, shifted by delta.
inline void iq1_8(float dl, uint64_t entry, float delta, float* y) {
    for (int j = 0; j < 8; ++j) y[j] = dl * (static_cast<float>(static_cast<int8_t>(grid_byte(entry, j))) + delta);
}

void dequantize_iq1_s(const uint8_t* src, float* y, int64_t n) {
    for (const BlockIQ1_S* b = blocks<BlockIQ1_S>(src); n-- > 0; ++b) {
        const float d = half(b->d);
        for (int ib = 0; ib < 8; ++ib) {
            const uint16_t qh = u16le(b->qh + 2 * ib);
            const float dl = d * static_cast<float>(2 * ((qh >> 12) & 7) + 1);
            const float delta = qh & 0x8000 ? -kIQ1Delta : kIQ1Delta;
            for (int l = 0; l < 4; ++l, y += 8)
                iq1_8(dl, grids::kIQ1S[b->qs[4 * ib + l] | (((qh >> (3 * l)) & 7) << 8)], delta, y);
        }
    }
}

void dequantize_iq1_m(const uint8_t* src, float* y, int64_t n) {
    for (const BlockIQ1_M* b = blocks<BlockIQ1_M>(src); n-- > 0; ++b) {
        uint16_t sc[4];
        for (int i = 0; i < 4; ++i) sc[i] = u16le(b->scales + 2 * i);
        const uint16_t d_bits = static_cast<uint16_t>((sc[0] >> 12) | ((sc[1] >> 8) & 0x00f0) | ((sc[2] >> 4) & 0x0f00) | (sc[3] & 0xf000));
        const float d = f16_to_f32(d_bits);
        for (int ib = 0; ib < 8; ++ib) {
            const int shift = 6 * (ib % 2);
            const float dl[2] = {d * static_cast<float>(2 * ((sc[ib / 2] >> shift) & 7) + 1),
                                 d * static_cast<float>(2 * ((sc[ib / 2] >> (shift + 3)) & 7) + 1)};
            const uint8_t* qs = b->qs + 4 * ib;
            const uint8_t* qh = b->qh + 2 * ib;
            for (int l = 0; l < 4; ++l, y += 8) {
                const uint8_t h = qh[l / 2];
                const int high = l % 2 ? (h << 4) & 0x700 : (h << 8) & 0x700;
                const bool negative = l % 2 ? (h & 0x80) : (h & 0x08);
                iq1_8(dl[l / 2], grids::kIQ1S[qs[l] | high], negative ? -kIQ1Delta : kIQ1Delta, y);
            }
        }
    }
}

inline void iq4_32(float dl, const uint8_t* qs, float* y) {
    for (int j = 0; j < 16; ++j) {
        y[j] = dl * static_cast<float>(kIQ4Levels[qs[j] & 0x0f]);
        y[j + 16] = dl * static_cast<float>(kIQ4Levels[qs[j] >> 4]);
    }
}

void dequantize_iq4_nl(const uint8_t* src, float* y, int64_t n) {
    for (const BlockIQ4_NL* b = blocks<BlockIQ4_NL>(src); n-- > 0; ++b, y += 32) iq4_32(half(b->d), b->qs, y);
}

void dequantize_iq4_xs(const uint8_t* src, float* y, int64_t n) {
    for (const BlockIQ4_XS* b = blocks<BlockIQ4_XS>(src); n-- > 0; ++b) {
        const float d = half(b->d);
        const uint16_t scales_h = u16le(b->scales_h);
        for (int ib = 0; ib < 8; ++ib, y += 32) {
            const int low = (b->scales_l[ib / 2] >> (4 * (ib % 2))) & 0x0f;
            const int high = (scales_h >> (2 * ib)) & 3;
            iq4_32(d * static_cast<float>((low | high << 4) - 32), b->qs + 16 * ib, y);
        }
    }
}

// IQ4 levels as a codebook (already ascending; code = index).
constexpr float kIQ4Values[16] = {-127, -104, -83, -65, -49, -35, -22, -10, 1, 13, 25, 38, 53, 69, 89, 113};
constexpr uint8_t kIdentity16[16] = {0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15};
constexpr Levels kIQ4 = {kIQ4Values, kIdentity16, 16};

void pack_iq4(const uint8_t* code, uint8_t* qs) {
    for (int j = 0; j < 16; ++j) qs[j] = static_cast<uint8_t>(code[j] | code[j + 16] << 4);
}

void quantize_iq4_nl(const float* x, uint8_t* dst, int64_t n, const float* imp) {
    quantize_blocks<BlockIQ4_NL, 32>(x, dst, n, imp, [](const float* xb, const float* w, BlockIQ4_NL& b) {
        uint8_t code[32];
        store_half(b.d, fit_levels(xb, w, 32, kIQ4, code, true));
        pack_iq4(code, b.qs);
    });
}

// IQ4_XS: sub-block scales fitted on their own, quantized to 6 bits against the f16 d, then
// nudged by one where that lowers the sub-block's weighted error (as the k-quants do).
void quantize_iq4_xs(const float* x, uint8_t* dst, int64_t n, const float* imp) {
    quantize_blocks<BlockIQ4_XS, 256>(x, dst, n, imp, [](const float* xb, const float* w, BlockIQ4_XS& blk) {
        BlockIQ4_XS* b = &blk;
        float scale[8], scale_weight[8];
        uint8_t code[256];
        for (int j = 0; j < 8; ++j) {
            scale[j] = fit_levels(xb + 32 * j, w + 32 * j, 32, kIQ4, code + 32 * j, false);
            scale_weight[j] = 0;
            for (int k = 0; k < 32; ++k) scale_weight[j] += w[32 * j + k] * kIQ4Values[code[32 * j + k]] * kIQ4Values[code[32 * j + k]];
        }
        int8_t sc[8];
        const float d = fit_symmetric(scale, scale_weight, 8, -32, 31, sc);
        store_half(b->d, d);
        uint16_t scales_h = 0;
        std::fill(b->scales_l, b->scales_l + 4, 0);
        for (int j = 0; j < 8; ++j) {
            uint8_t trial[32];
            float best = std::numeric_limits<float>::infinity();
            int chosen = sc[j];
            for (int a = -1; a <= 1; ++a) {
                const int s = std::clamp(sc[j] + a, -32, 31);
                const float err = level_codes(xb + 32 * j, w + 32 * j, 32, kIQ4, d * static_cast<float>(s), trial);
                if (err < best) {
                    best = err;
                    chosen = s;
                    std::copy(trial, trial + 32, code + 32 * j);
                }
            }
            const int ls = chosen + 32;
            b->scales_l[j / 2] |= static_cast<uint8_t>((ls & 0x0f) << (4 * (j % 2)));
            scales_h |= static_cast<uint16_t>((ls >> 4) << (2 * j));
            pack_iq4(code + 32 * j, b->qs + 16 * j);
        }
        b->scales_h[0] = static_cast<uint8_t>(scales_h);
        b->scales_h[1] = static_cast<uint8_t>(scales_h >> 8);
    });
}

// The grid formats' sub-block scales, as their decoders compute them.
float iq2_scale(float d, int s) { return d * (0.5f + static_cast<float>(s)) * 0.25f; }
float iq3xxs_scale(float d, int s) { return d * (0.5f + static_cast<float>(s)) * 0.5f; }
float iq3s_scale(float d, int s) { return d * static_cast<float>(1 + 2 * s); }

template <class Block, class Pack>
void quantize_grid(const float* x, uint8_t* dst, int64_t n, const float* imp, const Grid& grid, ScaleCode code,
                   GridOptions options, Pack pack) {
    quantize_blocks<Block, 256>(x, dst, n, imp, [&](const float* xb, const float* w, Block& b) { pack(fit_grid(xb, w, grid, code, options), b); });
}

// The 7 stored sign bits of 8 values (the eighth follows from even parity).
inline uint32_t signs7(const GridFit& f, int group) { return f.signs[group] & 127u; }

void put_u32(uint8_t* p, uint32_t v) {
    for (int k = 0; k < 4; ++k) p[k] = static_cast<uint8_t>(v >> (8 * k));
}

void quantize_iq2_xxs(const float* x, uint8_t* dst, int64_t n, const float* imp) {
    quantize_grid<BlockIQ2_XXS>(x, dst, n, imp, grid_iq2xxs(), {0.25f, iq2_scale}, {32, true}, [](const GridFit& f, BlockIQ2_XXS& b) {
        store_half(b.d, f.d);
        for (int ib = 0; ib < 8; ++ib) {
            uint32_t meta = static_cast<uint32_t>(f.scale[ib]) << 28;
            for (int l = 0; l < 4; ++l) {
                b.qs[8 * ib + l] = static_cast<uint8_t>(f.entry[4 * ib + l]);
                meta |= signs7(f, 4 * ib + l) << (7 * l);
            }
            put_u32(b.qs + 8 * ib + 4, meta);
        }
    });
}

void quantize_iq2_xs(const float* x, uint8_t* dst, int64_t n, const float* imp) {
    quantize_grid<BlockIQ2_XS>(x, dst, n, imp, grid_iq2xs(), {0.25f, iq2_scale}, {16, true}, [](const GridFit& f, BlockIQ2_XS& b) {
        store_half(b.d, f.d);
        for (int g = 0; g < 32; ++g) {
            const uint16_t c = static_cast<uint16_t>(f.entry[g] | signs7(f, g) << 9);
            b.qs[2 * g] = static_cast<uint8_t>(c);
            b.qs[2 * g + 1] = static_cast<uint8_t>(c >> 8);
        }
        for (int ib = 0; ib < 8; ++ib) b.scales[ib] = static_cast<uint8_t>(f.scale[2 * ib] | f.scale[2 * ib + 1] << 4);
    });
}

void quantize_iq2_s(const float* x, uint8_t* dst, int64_t n, const float* imp) {
    quantize_grid<BlockIQ2_S>(x, dst, n, imp, grid_iq2s(), {0.25f, iq2_scale}, {16, false}, [](const GridFit& f, BlockIQ2_S& b) {
        store_half(b.d, f.d);
        std::fill(b.qh, b.qh + 8, 0);
        for (int g = 0; g < 32; ++g) {
            b.qs[g] = static_cast<uint8_t>(f.entry[g]);
            b.qh[g / 4] |= static_cast<uint8_t>((f.entry[g] >> 8) << (2 * (g % 4)));
            b.qs[32 + g] = f.signs[g];
        }
        for (int ib = 0; ib < 8; ++ib) b.scales[ib] = static_cast<uint8_t>(f.scale[2 * ib] | f.scale[2 * ib + 1] << 4);
    });
}

void quantize_iq3_xxs(const float* x, uint8_t* dst, int64_t n, const float* imp) {
    quantize_grid<BlockIQ3_XXS>(x, dst, n, imp, grid_iq3xxs(), {0.5f, iq3xxs_scale}, {32, true}, [](const GridFit& f, BlockIQ3_XXS& b) {
        store_half(b.d, f.d);
        for (int ib = 0; ib < 8; ++ib) {
            uint32_t meta = static_cast<uint32_t>(f.scale[ib]) << 28;
            for (int l = 0; l < 4; ++l) meta |= signs7(f, 4 * ib + l) << (7 * l);
            for (int h = 0; h < 8; ++h) b.qs[8 * ib + h] = static_cast<uint8_t>(f.entry[8 * ib + h]);
            put_u32(b.qs + 64 + 4 * ib, meta);
        }
    });
}

void quantize_iq3_s(const float* x, uint8_t* dst, int64_t n, const float* imp) {
    quantize_grid<BlockIQ3_S>(x, dst, n, imp, grid_iq3s(), {2.0f, iq3s_scale}, {32, false}, [](const GridFit& f, BlockIQ3_S& b) {
        store_half(b.d, f.d);
        std::fill(b.qh, b.qh + 8, 0);
        std::fill(b.scales, b.scales + 4, 0);
        for (int ib = 0; ib < 8; ++ib) {
            for (int h = 0; h < 8; ++h) {
                b.qs[8 * ib + h] = static_cast<uint8_t>(f.entry[8 * ib + h]);
                b.qh[ib] |= static_cast<uint8_t>((f.entry[8 * ib + h] >> 8) << h);
            }
            for (int l = 0; l < 4; ++l) b.signs[4 * ib + l] = f.signs[4 * ib + l];
            b.scales[ib / 2] |= static_cast<uint8_t>(f.scale[ib] << (4 * (ib % 2)));
        }
    });
}

float iq1_scale(float d, int s) { return d * static_cast<float>(2 * s + 1); }

// An IQ1 grid option: entry (11 bits) and whether its shift is -1/8.
inline int iq1_entry(uint16_t option) { return option & 2047; }
inline bool iq1_negative(uint16_t option) { return option >= 2048; }

void quantize_iq1_s(const float* x, uint8_t* dst, int64_t n, const float* imp) {
    quantize_grid<BlockIQ1_S>(x, dst, n, imp, grid_iq1(), {2.0f, iq1_scale, 7}, {32, false, true, 2}, [](const GridFit& f, BlockIQ1_S& b) {
        store_half(b.d, f.d);
        for (int ib = 0; ib < 8; ++ib) {
            uint16_t qh = static_cast<uint16_t>(f.scale[ib] << 12 | (iq1_negative(f.entry[4 * ib]) ? 0x8000 : 0));
            for (int l = 0; l < 4; ++l) {
                const int e = iq1_entry(f.entry[4 * ib + l]);
                b.qs[4 * ib + l] = static_cast<uint8_t>(e);
                qh = static_cast<uint16_t>(qh | (e >> 8) << (3 * l));
            }
            b.qh[2 * ib] = static_cast<uint8_t>(qh);
            b.qh[2 * ib + 1] = static_cast<uint8_t>(qh >> 8);
        }
    });
}

void quantize_iq1_m(const float* x, uint8_t* dst, int64_t n, const float* imp) {
    quantize_grid<BlockIQ1_M>(x, dst, n, imp, grid_iq1(), {2.0f, iq1_scale, 7}, {16, false, true, 1}, [](const GridFit& f, BlockIQ1_M& b) {
        uint16_t sc[4] = {};
        for (int ib = 0; ib < 8; ++ib) {
            sc[ib / 2] = static_cast<uint16_t>(sc[ib / 2] | (f.scale[2 * ib] | f.scale[2 * ib + 1] << 3) << (6 * (ib % 2)));
            for (int l = 0; l < 4; ++l) {
                const uint16_t option = f.entry[4 * ib + l];
                b.qs[4 * ib + l] = static_cast<uint8_t>(iq1_entry(option));
                const int nibble = (iq1_entry(option) >> 8) | (iq1_negative(option) ? 8 : 0);
                uint8_t& h = b.qh[2 * ib + l / 2];
                h = static_cast<uint8_t>(l % 2 ? (h & 0x0f) | nibble << 4 : (h & 0xf0) | nibble);
            }
        }
        const uint16_t d = f32_to_f16(f.d);  // the f16 d spread over the scale words' top nibbles
        for (int i = 0; i < 4; ++i) {
            sc[i] = static_cast<uint16_t>(sc[i] | ((d >> (4 * i)) & 0xf) << 12);
            b.scales[2 * i] = static_cast<uint8_t>(sc[i]);
            b.scales[2 * i + 1] = static_cast<uint8_t>(sc[i] >> 8);
        }
    });
}

}  // namespace

void register_iquants(TraitsTable& t) {
    set_type(t, TypeId::IQ4_NL, dequantize_iq4_nl, quantize_iq4_nl);
    set_type(t, TypeId::IQ4_XS, dequantize_iq4_xs, quantize_iq4_xs);
    set_type(t, TypeId::IQ2_XXS, dequantize_iq2_xxs, quantize_iq2_xxs, true);
    set_type(t, TypeId::IQ2_XS, dequantize_iq2_xs, quantize_iq2_xs, true);
    set_type(t, TypeId::IQ2_S, dequantize_iq2_s, quantize_iq2_s);
    set_type(t, TypeId::IQ3_XXS, dequantize_iq3_xxs, quantize_iq3_xxs);
    set_type(t, TypeId::IQ3_S, dequantize_iq3_s, quantize_iq3_s);
    set_type(t, TypeId::IQ1_S, dequantize_iq1_s, quantize_iq1_s, true);
    set_type(t, TypeId::IQ1_M, dequantize_iq1_m, quantize_iq1_m);  // ggml quantizes it with uniform weights too
    using K = ScaleKind;
    set_scales(t, TypeId::IQ4_NL, {{K::F16, offsetof(BlockIQ4_NL, d), "d"}});
    set_scales(t, TypeId::IQ4_XS, {{K::F16, offsetof(BlockIQ4_XS, d), "d"}});
    set_scales(t, TypeId::IQ2_XXS, {{K::F16, offsetof(BlockIQ2_XXS, d), "d"}});
    set_scales(t, TypeId::IQ2_XS, {{K::F16, offsetof(BlockIQ2_XS, d), "d"}});
    set_scales(t, TypeId::IQ2_S, {{K::F16, offsetof(BlockIQ2_S, d), "d"}});
    set_scales(t, TypeId::IQ3_XXS, {{K::F16, offsetof(BlockIQ3_XXS, d), "d"}});
    set_scales(t, TypeId::IQ3_S, {{K::F16, offsetof(BlockIQ3_S, d), "d"}});
    set_scales(t, TypeId::IQ1_S, {{K::F16, offsetof(BlockIQ1_S, d), "d"}});
    set_scales(t, TypeId::IQ1_M, {{K::F16Nibbles, offsetof(BlockIQ1_M, scales), "d"}});
}

}  // namespace quant::detail
