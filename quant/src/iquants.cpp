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

namespace {


// IQ4 levels as a codebook (already ascending; code = index).
constexpr float kIQ4Values[16] = {-127, -104, -83, -65, -49, -35, -22, -10, 1, 13, 25, 38, 53, 69, 89, 113};
constexpr uint8_t kIdentity16[16] = {0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15};
constexpr Levels kIQ4 = {kIQ4Values, kIdentity16, 16};

void pack_iq4(const uint8_t* code, uint8_t* qs) {
    for (int j = 0; j < 16; ++j) qs[j] = static_cast<uint8_t>(code[j] | code[j + 16] << 4);
}

// The IQ4 fits' starting scales (LevelStarts, fit.h): a third 5% step to larger scales (the
// largest value sent to 0.85 of an end level): 6 starts at each end instead of 5. With importance
// weights, weighted RMSE 0.969 / 0.953 -> 0.967 / 0.941 of ggml's on rmse.tsv's importance
// rows (iq4_nl; iq4_xs 0.963 / 0.922 -> 0.962 / 0.910); without, RMSE the same to 0.1%.
// Mean KL divergence against llama.cpp's files, tiny model: IQ4_XS / IQ4_NL imatrix 1.003 /
// 0.974 -> 1.001 / 0.970, without an imatrix 0.948 / 0.954 -> 0.953 / 0.961; trained IQ4_XS
// imatrix 0.957 -> 0.959. The third start with importance weights only measured worse on the
// tiny model (IQ4_XS imatrix 1.008: the tensors without an importance entry moved the figure
// the other way). Finer steps within the same range changed nothing; more than three, little.
constexpr LevelStarts kIQ4Starts{3, 2};

// IQ4_NL: each block's f16 scale searched over the codebook, sixteen blocks at a time
// (fit_levels16); a row's last blocks short of sixteen fill the idle lanes with copies.
void quantize_iq4_nl(const float* x, uint8_t* dst, int64_t n, const float* imp) {
    BlockIQ4_NL* b = blocks<BlockIQ4_NL>(dst);
    for_each_group16(x, n, imp, true, [&](const float* xs, const float* w, int g) {
        float d[16];
        uint8_t code[16 * 32];
        fit_levels16(xs, w, 32, kIQ4, code, true, d, kIQ4Starts);
        for (int k = 0; k < g; ++k, ++b) {
            store_half(b->d, d[k]);
            pack_iq4(code + 32 * k, b->qs);
        }
    });
}

// IQ4_XS: sub-block scales fitted on their own, quantized to 6 bits against the f16 d, then
// nudged by one where that lowers the sub-block's weighted error (as the k-quants do). Eight
// super-blocks at a time: the sub-blocks of two side by side (sixteen lanes), and the
// super-block scales of eight side by side.
void quantize_iq4_xs(const float* x, uint8_t* dst, int64_t n, const float* imp) {
    const float sigma2 = mean_square(x, n);
    BlockIQ4_XS* out = blocks<BlockIQ4_XS>(dst);
    float w[8 * 256];
    for (int64_t i = 0; i < n; i += 8 * 256) {
        const int g = static_cast<int>(std::min<int64_t>(8, (n - i) / 256));
        float scale[8][8], scale_weight[8][8], d[8];
        uint8_t code[8][256];
        for (int b = 0; b < g; ++b) block_weights(x + i + 256 * b, imp ? imp + i + 256 * b : nullptr, 256, sigma2, w + 256 * b);
        for (int b = 0; b < g; b += 2) {  // the sub-blocks of two super-blocks side by side (of one for a last odd one)
            if (b + 1 < g) fit_levels16(x + i + 256 * b, w + 256 * b, 32, kIQ4, code[b], false, scale[b], kIQ4Starts);
            else fit_levels8(x + i + 256 * b, w + 256 * b, 32, kIQ4, code[b], false, scale[b], kIQ4Starts);
        }
        for (int b = 0; b < g; ++b) {
            const float* wb = w + 256 * b;
            for (int j = 0; j < 8; ++j) {
                scale_weight[b][j] = 0;
                for (int k = 0; k < 32; ++k) scale_weight[b][j] += wb[32 * j + k] * kIQ4Values[code[b][32 * j + k]] * kIQ4Values[code[b][32 * j + k]];
            }
        }
        for (int b = g; b < 8; ++b) {  // idle lanes: a copy of the first super-block
            std::copy(scale[0], scale[0] + 8, scale[b]);
            std::copy(scale_weight[0], scale_weight[0] + 8, scale_weight[b]);
        }
        int8_t sc[8][8];
        fit_symmetric8(scale[0], scale_weight[0], 8, -32, 31, sc[0], true, Search{}, d);
        // The nudges for two super-blocks at once (one for a last odd one): candidate t of
        // sub-block j of super-block b at [t][8 (b % 2) + j].
        int s[3][16], pick_pair[16];
        float dl[3][16];
        uint8_t trial_pair[512];
        for (int b = 0; b < g; ++b, ++out) {
            if (b % 2 == 0) {
                const int pair = b + 1 < g ? 2 : 1;
                for (int t = 0; t < 3; ++t)
                    for (int k = 0; k < 8 * pair; ++k) {
                        s[t][k] = std::clamp(sc[b + k / 8][k % 8] + t - 1, -32, 31);
                        dl[t][k] = d[b + k / 8] * static_cast<float>(s[t][k]);
                    }
                if (pair == 2) best_level_codes16(x + i + 256 * b, w + 256 * b, 32, kIQ4, 3, dl[0], trial_pair, pick_pair);
                else {
                    float dl8[3][8];
                    half_of(dl[0], 3, 0, dl8[0]);
                    best_level_codes8(x + i + 256 * b, w + 256 * b, 32, kIQ4, 3, dl8[0], trial_pair, pick_pair);
                }
            }
            const int half = 8 * (b % 2);
            const int* pick = pick_pair + half;
            const uint8_t* trial = trial_pair + 32 * half;
            store_half(out->d, d[b]);
            uint16_t scales_h = 0;
            std::fill(out->scales_l, out->scales_l + 4, 0);
            for (int j = 0; j < 8; ++j) {
                int chosen = sc[b][j];
                if (pick[j] >= 0) {
                    chosen = s[pick[j]][half + j];
                    std::copy(trial + 32 * j, trial + 32 * (j + 1), code[b] + 32 * j);
                }
                const int ls = chosen + 32;
                out->scales_l[j / 2] |= static_cast<uint8_t>((ls & 0x0f) << (4 * (j % 2)));
                scales_h |= static_cast<uint16_t>((ls >> 4) << (2 * j));
                pack_iq4(code[b] + 32 * j, out->qs + 16 * j);
            }
            out->scales_h[0] = static_cast<uint8_t>(scales_h);
            out->scales_h[1] = static_cast<uint8_t>(scales_h >> 8);
        }
    }
}

// The grid formats' sub-block scales, as their decoders compute them.
float iq2_scale(float d, int s) { return d * (0.5f + static_cast<float>(s)) * 0.25f; }
float iq3xxs_scale(float d, int s) { return d * (0.5f + static_cast<float>(s)) * 0.5f; }
float iq3s_scale(float d, int s) { return d * static_cast<float>(1 + 2 * s); }

template <class Block, GridSearch kSearch, class Pack>
void quantize_grid(const float* x, uint8_t* dst, int64_t n, const float* imp, const Grid& grid, ScaleCode code,
                   GridOptions options, Pack pack) {
    quantize_blocks<Block, 256>(x, dst, n, imp,
                                [&](const float* xb, const float* w, Block& b) { pack(fit_grid(xb, w, grid, code, options, kSearch), b); });
}

// The 7 stored sign bits of 8 values (the eighth follows from even parity).
inline uint32_t signs7(const GridFit& f, int group) { return f.signs[group] & 127u; }

void put_u32(uint8_t* p, uint32_t v) {
    for (int k = 0; k < 4; ++k) p[k] = static_cast<uint8_t>(v >> (8 * k));
}

template <GridSearch kSearch>
void quantize_iq2_xxs(const float* x, uint8_t* dst, int64_t n, const float* imp) {
    quantize_grid<BlockIQ2_XXS, kSearch>(x, dst, n, imp, grid_iq2xxs(), {0.25f, iq2_scale}, {32, true}, [](const GridFit& f, BlockIQ2_XXS& b) {
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

template <GridSearch kSearch>
void quantize_iq2_xs(const float* x, uint8_t* dst, int64_t n, const float* imp) {
    quantize_grid<BlockIQ2_XS, kSearch>(x, dst, n, imp, grid_iq2xs(), {0.25f, iq2_scale}, {16, true}, [](const GridFit& f, BlockIQ2_XS& b) {
        store_half(b.d, f.d);
        for (int g = 0; g < 32; ++g) {
            const uint16_t c = static_cast<uint16_t>(f.entry[g] | signs7(f, g) << 9);
            b.qs[2 * g] = static_cast<uint8_t>(c);
            b.qs[2 * g + 1] = static_cast<uint8_t>(c >> 8);
        }
        for (int ib = 0; ib < 8; ++ib) b.scales[ib] = static_cast<uint8_t>(f.scale[2 * ib] | f.scale[2 * ib + 1] << 4);
    });
}

template <GridSearch kSearch>
void quantize_iq2_s(const float* x, uint8_t* dst, int64_t n, const float* imp) {
    quantize_grid<BlockIQ2_S, kSearch>(x, dst, n, imp, grid_iq2s(), {0.25f, iq2_scale}, {16, false}, [](const GridFit& f, BlockIQ2_S& b) {
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

template <GridSearch kSearch>
void quantize_iq3_xxs(const float* x, uint8_t* dst, int64_t n, const float* imp) {
    quantize_grid<BlockIQ3_XXS, kSearch>(x, dst, n, imp, grid_iq3xxs(), {0.5f, iq3xxs_scale}, {32, true}, [](const GridFit& f, BlockIQ3_XXS& b) {
        store_half(b.d, f.d);
        for (int ib = 0; ib < 8; ++ib) {
            uint32_t meta = static_cast<uint32_t>(f.scale[ib]) << 28;
            for (int l = 0; l < 4; ++l) meta |= signs7(f, 4 * ib + l) << (7 * l);
            for (int h = 0; h < 8; ++h) b.qs[8 * ib + h] = static_cast<uint8_t>(f.entry[8 * ib + h]);
            put_u32(b.qs + 64 + 4 * ib, meta);
        }
    });
}

template <GridSearch kSearch>
void quantize_iq3_s(const float* x, uint8_t* dst, int64_t n, const float* imp) {
    quantize_grid<BlockIQ3_S, kSearch>(x, dst, n, imp, grid_iq3s(), {2.0f, iq3s_scale}, {32, false}, [](const GridFit& f, BlockIQ3_S& b) {
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

template <GridSearch kSearch>
void quantize_iq1_s(const float* x, uint8_t* dst, int64_t n, const float* imp) {
    quantize_grid<BlockIQ1_S, kSearch>(x, dst, n, imp, grid_iq1(), {2.0f, iq1_scale, 7}, {32, false, true, 2}, [](const GridFit& f, BlockIQ1_S& b) {
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

template <GridSearch kSearch>
void quantize_iq1_m(const float* x, uint8_t* dst, int64_t n, const float* imp) {
    quantize_grid<BlockIQ1_M, kSearch>(x, dst, n, imp, grid_iq1(), {2.0f, iq1_scale, 7}, {16, false, true, 1}, [](const GridFit& f, BlockIQ1_M& b) {
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
    using K = ScaleKind;
    add_block_type<BlockIQ4_NL>(t, quantize_iq4_nl, {{K::F16, offsetof(BlockIQ4_NL, d), "d"}});
    add_block_type<BlockIQ4_XS>(t, quantize_iq4_xs, {{K::F16, offsetof(BlockIQ4_XS, d), "d"}});
    add_block_type<BlockIQ2_XXS>(t, quantize_iq2_xxs<GridSearch::Narrow>, {{K::F16, offsetof(BlockIQ2_XXS, d), "d"}}, true);
    add_block_type<BlockIQ2_XS>(t, quantize_iq2_xs<GridSearch::Narrow>, {{K::F16, offsetof(BlockIQ2_XS, d), "d"}}, true);
    add_block_type<BlockIQ2_S>(t, quantize_iq2_s<GridSearch::Narrow>, {{K::F16, offsetof(BlockIQ2_S, d), "d"}});
    add_block_type<BlockIQ3_XXS>(t, quantize_iq3_xxs<GridSearch::Narrow>, {{K::F16, offsetof(BlockIQ3_XXS, d), "d"}});
    add_block_type<BlockIQ3_S>(t, quantize_iq3_s<GridSearch::Narrow>, {{K::F16, offsetof(BlockIQ3_S, d), "d"}});
    add_block_type<BlockIQ1_S>(t, quantize_iq1_s<GridSearch::Ternary>, {{K::F16, offsetof(BlockIQ1_S, d), "d"}}, true);
    add_block_type<BlockIQ1_M>(t, quantize_iq1_m<GridSearch::Ternary>, {{K::F16Nibbles, offsetof(BlockIQ1_M, scales), "d"}});  // ggml quantizes it without an importance matrix too
    // The grid searches (GridSearch): narrow by default on the IQ2 and IQ3 types (the IQ3_XXS
    // mix, which also takes IQ3_S and IQ2_S, then runs in half the time); ternary on IQ1_S and
    // IQ1_M (until 2026-12-05 wide: the narrow one measured a higher KL divergence there, the
    // tiny model's IQ1_S mix 0.962 -> 0.986 of llama.cpp's; the ternary one 0.941, and the
    // mix in a quarter of the time). --effort best: the default and the wide search, the
    // better fit of each super-block.
    set_efforts(t, TypeId::IQ2_XXS, nullptr, quantize_iq2_xxs<GridSearch::Both>);
    set_efforts(t, TypeId::IQ2_XS, nullptr, quantize_iq2_xs<GridSearch::Both>);
    set_efforts(t, TypeId::IQ2_S, nullptr, quantize_iq2_s<GridSearch::Both>);
    set_efforts(t, TypeId::IQ3_XXS, nullptr, quantize_iq3_xxs<GridSearch::Both>);
    set_efforts(t, TypeId::IQ3_S, nullptr, quantize_iq3_s<GridSearch::Both>);
    set_efforts(t, TypeId::IQ1_S, nullptr, quantize_iq1_s<GridSearch::Both>);
    set_efforts(t, TypeId::IQ1_M, nullptr, quantize_iq1_m<GridSearch::Both>);
    set_fitted_scales(t, {TypeId::IQ4_NL, TypeId::IQ4_XS, TypeId::IQ2_XXS, TypeId::IQ2_XS, TypeId::IQ2_S, TypeId::IQ3_XXS, TypeId::IQ3_S,
                          TypeId::IQ1_S, TypeId::IQ1_M});
}

}  // namespace quant::detail
