// iquants, avx512 path: the grid i-quants IQ1_S, IQ1_M, IQ2_XXS, IQ2_XS, IQ2_S, IQ3_XXS, IQ3_S.
//
// Dequantization equals quant/decode.h bit for bit. Each 8 values are one grid entry (two
// for IQ3) widened to floats, multiplied by the scale, then the sign bit flipped where the
// value is negative, as the decoder's apply_sign negates (flipping a NaN's sign too).
// IQ1's g + delta is exact in floats.
// f16 scales go through vcvtph2ps, which quiets a signalling NaN: the decoder's first
// multiplication quiets it too, and every scale here is multiplied before it is stored.
//
// Dot products with Q8_K activations, 64 values a step (see the section below): grid bytes
// times activation codes negated under a sign mask, vpmaddubsw then vpdpwssd with the
// integer scale multipliers; one float multiply-add per block. Where the CPU has VBMI, the
// IQ2_XXS, IQ2_S, IQ3_XXS and IQ3_S grids are looked up in registers (the VBMI section).
// The loop over blocks of the dot products (dot_blocks) and the scale helpers both paths use
// are in iquants_simd.h.
#include <immintrin.h>

#include <cstdint>

#include "iquants_simd.h"
#include "quant/blocks.h"
#include "quant/grids.h"
#include "table.h"

namespace kernels::avx512 {

namespace {

using gguf::TypeId;
using quant::BlockIQ1_M;
using quant::BlockIQ1_S;
using quant::BlockIQ2_S;
using quant::BlockIQ2_XS;
using quant::BlockIQ2_XXS;
using quant::BlockIQ3_S;
using quant::BlockIQ3_XXS;
using quant::BlockQ8_K;

// ---- Dequantization --------------------------------------------------------------------

// 16 bytes, unsigned or signed, as floats.
__m512 unsigned_floats(__m128i bytes) { return _mm512_cvtepi32_ps(_mm512_cvtepu8_epi32(bytes)); }
__m512 signed_floats(__m128i bytes) { return _mm512_cvtepi32_ps(_mm512_cvtepi8_epi32(bytes)); }

// 16 values dl x g from 16 unsigned grid bytes, the sign bit flipped in the lanes of `negative`.
void put16(float* y, __m128i grid, __mmask16 negative, __m512 dl) {
    const __m512 v = _mm512_mul_ps(dl, unsigned_floats(grid));
    _mm512_storeu_ps(y, _mm512_mask_xor_ps(v, negative, v, _mm512_set1_ps(-0.0f)));
}
// 32 values: grid entries e0-e3, sign bits `signs`, dl0 for the first 16 and dl1 for the next.
void put32(float* y, uint64_t e0, uint64_t e1, uint64_t e2, uint64_t e3, uint32_t signs, __m512 dl0, __m512 dl1) {
    put16(y, _mm_set_epi64x(static_cast<int64_t>(e1), static_cast<int64_t>(e0)), static_cast<__mmask16>(signs), dl0);
    put16(y + 16, _mm_set_epi64x(static_cast<int64_t>(e3), static_cast<int64_t>(e2)), static_cast<__mmask16>(signs >> 16), dl1);
}

// 16 IQ1 values dl x (g + delta) from 16 signed grid bytes; delta is -1/8 in the lanes of
// `negative`, else 1/8.
void put16_iq1(float* y, uint64_t e0, uint64_t e1, __mmask16 negative, __m512 dl) {
    const __m512 g = signed_floats(_mm_set_epi64x(static_cast<int64_t>(e1), static_cast<int64_t>(e0)));
    const __m512 delta = _mm512_mask_blend_ps(negative, _mm512_set1_ps(0.125f), _mm512_set1_ps(-0.125f));
    _mm512_storeu_ps(y, _mm512_mul_ps(dl, _mm512_add_ps(g, delta)));
}

void dequantize_iq2_xxs(const uint8_t* src, float* y, int64_t n_blocks) {
    const uint64_t* grid = quant::host_grids().iq2xxs;
    for (const auto* b = reinterpret_cast<const BlockIQ2_XXS*>(src); n_blocks-- > 0; ++b) {
        const float d = half_to_float(b->d);
        for (int ib = 0; ib < 8; ++ib, y += 32) {
            const uint8_t* q = b->qs + 8 * ib;
            const uint32_t meta = load_u32(q + 4);
            const __m512 db = _mm512_set1_ps(half_step_scale(d, meta >> 28, 0.25f));
            put32(y, grid[q[0]], grid[q[1]], grid[q[2]], grid[q[3]], signs_from7x4(meta), db, db);
        }
    }
}

void dequantize_iq2_xs(const uint8_t* src, float* y, int64_t n_blocks) {
    const uint64_t* grid = quant::host_grids().iq2xs;
    for (const auto* b = reinterpret_cast<const BlockIQ2_XS*>(src); n_blocks-- > 0; ++b) {
        const float d = half_to_float(b->d);
        for (int ib = 0; ib < 8; ++ib, y += 32) {
            const __m512 db0 = _mm512_set1_ps(half_step_scale(d, b->scales[ib] & 0x0f, 0.25f));
            const __m512 db1 = _mm512_set1_ps(half_step_scale(d, b->scales[ib] >> 4, 0.25f));
            const uint64_t codes = load_u64(b->qs + 8 * ib);  // four u16: 9-bit index, 7 sign bits
            const uint32_t signs = signs_from7x4(static_cast<uint32_t>(_pext_u64(codes, 0xfe00fe00fe00fe00ull)));
            put32(y, grid[codes & 511], grid[(codes >> 16) & 511], grid[(codes >> 32) & 511], grid[(codes >> 48) & 511], signs, db0, db1);
        }
    }
}

void dequantize_iq2_s(const uint8_t* src, float* y, int64_t n_blocks) {
    const uint64_t* grid = quant::host_grids().iq2s;
    for (const auto* b = reinterpret_cast<const BlockIQ2_S*>(src); n_blocks-- > 0; ++b) {
        const float d = half_to_float(b->d);
        for (int ib = 0; ib < 8; ++ib, y += 32) {
            const __m512 db0 = _mm512_set1_ps(half_step_scale(d, b->scales[ib] & 0x0f, 0.25f));
            const __m512 db1 = _mm512_set1_ps(half_step_scale(d, b->scales[ib] >> 4, 0.25f));
            const uint8_t* q = b->qs + 4 * ib;
            const int qh = b->qh[ib];
            put32(y, grid[q[0] | ((qh << 8) & 0x300)], grid[q[1] | ((qh << 6) & 0x300)], grid[q[2] | ((qh << 4) & 0x300)],
                  grid[q[3] | ((qh << 2) & 0x300)], load_u32(b->qs + 32 + 4 * ib), db0, db1);
        }
    }
}

// Two IQ3 entries of 4 bytes as one of 8.
uint64_t iq3_pair(const uint32_t* grid, int first, int second) { return grid[first] | uint64_t{grid[second]} << 32; }

void dequantize_iq3_xxs(const uint8_t* src, float* y, int64_t n_blocks) {
    const uint32_t* grid = quant::host_grids().iq3xxs;
    for (const auto* b = reinterpret_cast<const BlockIQ3_XXS*>(src); n_blocks-- > 0; ++b) {
        const float d = half_to_float(b->d);
        for (int ib = 0; ib < 8; ++ib, y += 32) {
            const uint32_t meta = load_u32(b->qs + 64 + 4 * ib);
            const __m512 db = _mm512_set1_ps(half_step_scale(d, meta >> 28, 0.5f));
            const uint8_t* q = b->qs + 8 * ib;
            put32(y, iq3_pair(grid, q[0], q[1]), iq3_pair(grid, q[2], q[3]), iq3_pair(grid, q[4], q[5]), iq3_pair(grid, q[6], q[7]),
                  signs_from7x4(meta), db, db);
        }
    }
}

void dequantize_iq3_s(const uint8_t* src, float* y, int64_t n_blocks) {
    const uint32_t* grid = quant::host_grids().iq3s;
    for (const auto* b = reinterpret_cast<const BlockIQ3_S*>(src); n_blocks-- > 0; ++b) {
        const float d = half_to_float(b->d);
        for (int ib = 0; ib < 8; ++ib, y += 32) {
            const int scale = (b->scales[ib / 2] >> (4 * (ib % 2))) & 0x0f;
            const __m512 db = _mm512_set1_ps(d * static_cast<float>(1 + 2 * scale));
            const uint8_t* q = b->qs + 8 * ib;
            const int qh = b->qh[ib];
            int idx[8];
            for (int j = 0; j < 8; ++j) idx[j] = q[j] | ((qh << (8 - j)) & 256);
            put32(y, iq3_pair(grid, idx[0], idx[1]), iq3_pair(grid, idx[2], idx[3]), iq3_pair(grid, idx[4], idx[5]),
                  iq3_pair(grid, idx[6], idx[7]), load_u32(b->signs + 4 * ib), db, db);
        }
    }
}

void dequantize_iq1_s(const uint8_t* src, float* y, int64_t n_blocks) {
    const uint64_t* grid = quant::host_grids().iq1s;
    for (const auto* b = reinterpret_cast<const BlockIQ1_S*>(src); n_blocks-- > 0; ++b) {
        const float d = half_to_float(b->d);
        for (int ib = 0; ib < 8; ++ib, y += 32) {
            const uint32_t qh = load_u16(b->qh + 2 * ib);
            const __m512 dl = _mm512_set1_ps(d * static_cast<float>(2 * ((qh >> 12) & 7) + 1));
            const __mmask16 negative = qh & 0x8000 ? 0xffff : 0;
            const uint8_t* q = b->qs + 4 * ib;
            put16_iq1(y, grid[q[0] | (qh & 7) << 8], grid[q[1] | ((qh >> 3) & 7) << 8], negative, dl);
            put16_iq1(y + 16, grid[q[2] | ((qh >> 6) & 7) << 8], grid[q[3] | ((qh >> 9) & 7) << 8], negative, dl);
        }
    }
}

void dequantize_iq1_m(const uint8_t* src, float* y, int64_t n_blocks) {
    const uint64_t* grid = quant::host_grids().iq1s;
    for (const auto* b = reinterpret_cast<const BlockIQ1_M*>(src); n_blocks-- > 0; ++b) {
        const float d = iq1_m_d(b->scales);
        for (int ib = 0; ib < 8; ++ib, y += 32) {
            const uint32_t sc = load_u16(b->scales + 2 * (ib / 2));
            const int shift = 6 * (ib % 2);
            const __m512 dl0 = _mm512_set1_ps(d * static_cast<float>(2 * ((sc >> shift) & 7) + 1));
            const __m512 dl1 = _mm512_set1_ps(d * static_cast<float>(2 * ((sc >> (shift + 3)) & 7) + 1));
            const uint32_t qh = load_u16(b->qh + 2 * ib);  // per 8 values: 3 high index bits, then the delta's sign
            const uint32_t negative = _pdep_u32(_pext_u32(qh, 0x8888u), 0x01010101u) * 0xffu;  // a byte of lane bits per 8 values
            const uint8_t* q = b->qs + 4 * ib;
            put16_iq1(y, grid[q[0] | (qh & 7) << 8], grid[q[1] | ((qh >> 4) & 7) << 8], static_cast<__mmask16>(negative), dl0);
            put16_iq1(y + 16, grid[q[2] | ((qh >> 8) & 7) << 8], grid[q[3] | ((qh >> 12) & 7) << 8], static_cast<__mmask16>(negative >> 16), dl1);
        }
    }
}

// ---- Dot products with Q8_K activations ------------------------------------------------
//
// 64 values a step: the grid bytes of 8 (or 16) entries in a zmm, unsigned; the activation
// codes negated under a 64-bit sign mask; vpmaddubsw to 32 i16 pair sums, then vpdpwssd
// with each 16 values' integer multiplier (2s + 1) into 16 i32 lanes. One float multiply-add
// per block.

__m512i step(__m512i acc, __m512i grid, const int8_t* q, uint64_t signs, __m512i multipliers) {
    const __m512i v = _mm512_loadu_si512(q);
    const __m512i codes = _mm512_mask_sub_epi8(v, signs, _mm512_setzero_si512(), v);
    return _mm512_dpwssd_epi32(acc, _mm512_maddubs_epi16(grid, codes), multipliers);
}

// The multipliers of step k: i16 lane m covers values 64k + 2m and 2m + 1, so takes
// multiplier 4k + m / 8 of the block's 16 (one per 16 values, in the low 256 bits).
__m512i step_multipliers(__m512i per16, int k) {
    const __m512i lane = _mm512_set_epi16(31, 30, 29, 28, 27, 26, 25, 24, 23, 22, 21, 20, 19, 18, 17, 16, 15, 14, 13, 12, 11, 10, 9, 8, 7, 6, 5, 4, 3, 2, 1, 0);
    return _mm512_permutexvar_epi16(_mm512_add_epi16(_mm512_set1_epi16(static_cast<int16_t>(4 * k)), _mm512_srli_epi16(lane, 3)), per16);
}

// acc + a block's four steps of 64 values: step k's grid bytes are grid_bytes(k), its sign
// mask the u64 at signs + 8k (no signs: nullptr).
template <class GridBytesOf> __m512i four_steps(__m512i acc, const BlockQ8_K& a, __m512i per16, const uint8_t* signs, GridBytesOf grid_bytes) {
    for (int k = 0; k < 4; ++k) acc = step(acc, grid_bytes(k), a.qs + 64 * k, signs ? load_u64(signs + 8 * k) : 0, step_multipliers(per16, k));
    return acc;
}

// 2s + 1 for 8 scales s (i16), each for 32 values, as 16 multipliers of 16 values.
__m512i per32_multipliers(__m128i s) {
    const __m128i m = _mm_add_epi16(_mm_add_epi16(s, s), _mm_set1_epi16(1));
    return _mm512_zextsi256_si512(_mm256_set_m128i(_mm_unpackhi_epi16(m, m), _mm_unpacklo_epi16(m, m)));
}

// 2s + 1 for 8 bytes of two 4-bit scales (low nibble first, each for 16 values).
__m512i nibble_multipliers(uint64_t scales) {
    const __m128i b = _mm_cvtsi64_si128(static_cast<int64_t>(scales));
    const __m128i nibbles = _mm_unpacklo_epi8(_mm_and_si128(b, _mm_set1_epi8(0x0f)), _mm_and_si128(_mm_srli_epi16(b, 4), _mm_set1_epi8(0x0f)));
    const __m256i w = _mm256_cvtepu8_epi16(nibbles);
    return _mm512_zextsi256_si512(_mm256_add_epi16(_mm256_add_epi16(w, w), _mm256_set1_epi16(1)));
}

// The grid entries of 8 indices, 8 bytes each.
__m512i grid_x8(const uint64_t* grid, const int* i) {
    return _mm512_set_epi64(static_cast<int64_t>(grid[i[7]]), static_cast<int64_t>(grid[i[6]]), static_cast<int64_t>(grid[i[5]]), static_cast<int64_t>(grid[i[4]]),
                            static_cast<int64_t>(grid[i[3]]), static_cast<int64_t>(grid[i[2]]), static_cast<int64_t>(grid[i[1]]), static_cast<int64_t>(grid[i[0]]));
}
// The grid entries of 16 indices, 4 bytes each.
__m512i grid_x16(const uint32_t* grid, const int* i) {
    uint64_t p[8];
    for (int j = 0; j < 8; ++j) p[j] = grid[i[2 * j]] | uint64_t{grid[i[2 * j + 1]]} << 32;
    return _mm512_set_epi64(static_cast<int64_t>(p[7]), static_cast<int64_t>(p[6]), static_cast<int64_t>(p[5]), static_cast<int64_t>(p[4]),
                            static_cast<int64_t>(p[3]), static_cast<int64_t>(p[2]), static_cast<int64_t>(p[1]), static_cast<int64_t>(p[0]));
}

// signs_from7x4 on 8 words at once: 4 x 7 bits to 4 bytes, each completed by even parity.
__m256i signs_from7x4_x8(__m256i m) {
    const int kOr = 0xf8;  // a | (b & c)
    __m256i r = _mm256_and_si256(m, _mm256_set1_epi32(0x7f));
    r = _mm256_ternarylogic_epi32(r, _mm256_slli_epi32(m, 1), _mm256_set1_epi32(0x7f00), kOr);
    r = _mm256_ternarylogic_epi32(r, _mm256_slli_epi32(m, 2), _mm256_set1_epi32(0x7f0000), kOr);
    r = _mm256_ternarylogic_epi32(r, _mm256_slli_epi32(m, 3), _mm256_set1_epi32(0x7f000000), kOr);
    __m256i p = _mm256_xor_si256(r, _mm256_srli_epi32(r, 4));
    p = _mm256_xor_si256(p, _mm256_srli_epi32(p, 2));
    p = _mm256_xor_si256(p, _mm256_srli_epi32(p, 1));
    return _mm256_ternarylogic_epi32(r, _mm256_slli_epi32(p, 7), _mm256_set1_epi32(static_cast<int>(0x80808080u)), kOr);
}


// IQ2_XXS: value = d (2s + 1) / 8 x g x sign.
float dot_iq2_xxs(const uint8_t* w, const uint8_t* x, int64_t n_blocks) {
    const uint64_t* grid = quant::host_grids().iq2xxs;
    return dot_blocks<BlockIQ2_XXS>(w, x, n_blocks, 0.125f, [&](const BlockIQ2_XXS& b, const BlockQ8_K& a) {
        const __m256i meta = _mm512_cvtepi64_epi32(_mm512_srli_epi64(_mm512_loadu_si512(b.qs), 32));  // the 8 u32 after each 4 indices
        const __m512i per16 = per32_multipliers(_mm256_cvtepi32_epi16(_mm256_srli_epi32(meta, 28)));
        alignas(32) uint8_t signs[32];
        _mm256_store_si256(reinterpret_cast<__m256i*>(signs), signs_from7x4_x8(meta));
        return four_steps(_mm512_setzero_si512(), a, per16, signs, [&](int k) {
            const uint8_t* q = b.qs + 16 * k;
            const int idx[8] = {q[0], q[1], q[2], q[3], q[8], q[9], q[10], q[11]};
            return grid_x8(grid, idx);
        });
    });
}

float dot_iq2_xs(const uint8_t* w, const uint8_t* x, int64_t n_blocks) {
    const uint64_t* grid = quant::host_grids().iq2xs;
    return dot_blocks<BlockIQ2_XS>(w, x, n_blocks, 0.125f, [&](const BlockIQ2_XS& b, const BlockQ8_K& a) {
        const __m512i per16 = nibble_multipliers(load_u64(b.scales));
        // The 7 sign bits of all 32 codes: even parity completes each to a byte.
        const __m512i codes = _mm512_loadu_si512(b.qs);
        const __m512i s7 = _mm512_srli_epi16(codes, 9);
        __m512i p = _mm512_xor_si512(s7, _mm512_srli_epi16(s7, 4));
        p = _mm512_xor_si512(p, _mm512_srli_epi16(p, 2));
        p = _mm512_xor_si512(p, _mm512_srli_epi16(p, 1));
        const __m512i s8 = _mm512_ternarylogic_epi32(s7, _mm512_slli_epi16(p, 7), _mm512_set1_epi16(0x80), 0xf8);
        alignas(32) uint8_t signs[32];
        _mm256_store_si256(reinterpret_cast<__m256i*>(signs), _mm512_cvtepi16_epi8(s8));
        return four_steps(_mm512_setzero_si512(), a, per16, signs, [&](int k) {
            const uint8_t* q = b.qs + 16 * k;
            int idx[8];
            for (int j = 0; j < 8; ++j) idx[j] = load_u16(q + 2 * j) & 511;
            return grid_x8(grid, idx);
        });
    });
}

float dot_iq2_s(const uint8_t* w, const uint8_t* x, int64_t n_blocks) {
    const uint64_t* grid = quant::host_grids().iq2s;
    return dot_blocks<BlockIQ2_S>(w, x, n_blocks, 0.125f, [&](const BlockIQ2_S& b, const BlockQ8_K& a) {
        const __m512i per16 = nibble_multipliers(load_u64(b.scales));
        return four_steps(_mm512_setzero_si512(), a, per16, b.qs + 32, [&](int k) {
            const uint8_t* q = b.qs + 8 * k;
            const uint32_t qh = load_u16(b.qh + 2 * k);  // 2 high index bits per 8 values
            int idx[8];
            for (int j = 0; j < 8; ++j) idx[j] = q[j] | ((qh >> (2 * j)) & 3) << 8;
            return grid_x8(grid, idx);
        });
    });
}

// IQ3_XXS: value = d (2s + 1) / 4 x g x sign.
float dot_iq3_xxs(const uint8_t* w, const uint8_t* x, int64_t n_blocks) {
    const uint32_t* grid = quant::host_grids().iq3xxs;
    return dot_blocks<BlockIQ3_XXS>(w, x, n_blocks, 0.25f, [&](const BlockIQ3_XXS& b, const BlockQ8_K& a) {
        const __m256i meta = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(b.qs + 64));
        const __m512i per16 = per32_multipliers(_mm256_cvtepi32_epi16(_mm256_srli_epi32(meta, 28)));
        alignas(32) uint8_t signs[32];
        _mm256_store_si256(reinterpret_cast<__m256i*>(signs), signs_from7x4_x8(meta));
        return four_steps(_mm512_setzero_si512(), a, per16, signs, [&](int k) {
            const uint8_t* q = b.qs + 16 * k;
            int idx[16];
            for (int j = 0; j < 16; ++j) idx[j] = q[j];
            return grid_x16(grid, idx);
        });
    });
}

// IQ3_S: value = d (2s + 1) x g x sign.
float dot_iq3_s(const uint8_t* w, const uint8_t* x, int64_t n_blocks) {
    const uint32_t* grid = quant::host_grids().iq3s;
    return dot_blocks<BlockIQ3_S>(w, x, n_blocks, 1.0f, [&](const BlockIQ3_S& b, const BlockQ8_K& a) {
        const __m128i packed = _mm_cvtsi32_si128(static_cast<int>(load_u32(b.scales)));  // 8 scales of 4 bits, low nibble first
        const __m128i s8 = _mm_cvtepu8_epi16(_mm_unpacklo_epi8(_mm_and_si128(packed, _mm_set1_epi8(0x0f)), _mm_and_si128(_mm_srli_epi16(packed, 4), _mm_set1_epi8(0x0f))));
        const __m512i per16 = per32_multipliers(s8);
        return four_steps(_mm512_setzero_si512(), a, per16, b.signs, [&](int k) {
            const uint8_t* q = b.qs + 16 * k;
            const uint32_t qh = load_u16(b.qh + 2 * k);  // the ninth index bit of each of 16 indices
            int idx[16];
            for (int j = 0; j < 16; ++j) idx[j] = q[j] | ((qh >> j) & 1) << 8;
            return grid_x16(grid, idx);
        });
    });
}

// IQ1: value = dl (g + delta) = dl (8g + e) / 8 with e = +-1. The unsigned bytes
// 8 (g + 1) (0, 8, 16) go through maddubs; sum (8g + e) q = sum 8 (g + 1) q + (e - 8) sum q,
// the last term from the activations' sums of 16 when e is constant over them (IQ1_S), else
// with e + 1 (0 or 2) added to the bytes and -9 sum q (IQ1_M).
__m512i iq1_bytes(__m512i grid) { return _mm512_slli_epi16(_mm512_add_epi8(grid, _mm512_set1_epi8(1)), 3); }
__m512i activation_sums(const BlockQ8_K& x) { return _mm512_zextsi256_si512(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(x.bsums))); }

float dot_iq1_s(const uint8_t* w, const uint8_t* x, int64_t n_blocks) {
    const uint64_t* grid = quant::host_grids().iq1s;
    return dot_blocks<BlockIQ1_S>(w, x, n_blocks, 0.125f, [&](const BlockIQ1_S& b, const BlockQ8_K& a) {
        const __m128i qh = _mm_loadu_si128(reinterpret_cast<const __m128i*>(b.qh));
        const __m512i per16 = per32_multipliers(_mm_and_si128(_mm_srli_epi16(qh, 12), _mm_set1_epi16(7)));
        // e - 8 per 32 values: -9 where bit 15 (delta negative) is set, else -7.
        const __m128i e8 = _mm_sub_epi16(_mm_set1_epi16(-7), _mm_slli_epi16(_mm_srli_epi16(qh, 15), 1));
        const __m512i offsets = _mm512_mullo_epi16(per16, _mm512_zextsi256_si512(_mm256_set_m128i(_mm_unpackhi_epi16(e8, e8), _mm_unpacklo_epi16(e8, e8))));
        return four_steps(_mm512_dpwssd_epi32(_mm512_setzero_si512(), activation_sums(a), offsets), a, per16, nullptr, [&](int k) {
            const uint8_t* q = b.qs + 8 * k;
            const uint32_t h0 = load_u16(b.qh + 4 * k), h1 = load_u16(b.qh + 4 * k + 2);
            const int idx[8] = {static_cast<int>(q[0] | (h0 & 7) << 8),        static_cast<int>(q[1] | ((h0 >> 3) & 7) << 8),
                                static_cast<int>(q[2] | ((h0 >> 6) & 7) << 8), static_cast<int>(q[3] | ((h0 >> 9) & 7) << 8),
                                static_cast<int>(q[4] | (h1 & 7) << 8),        static_cast<int>(q[5] | ((h1 >> 3) & 7) << 8),
                                static_cast<int>(q[6] | ((h1 >> 6) & 7) << 8), static_cast<int>(q[7] | ((h1 >> 9) & 7) << 8)};
            return iq1_bytes(grid_x8(grid, idx));
        });
    });
}

float dot_iq1_m(const uint8_t* w, const uint8_t* x, int64_t n_blocks) {
    const uint64_t* grid = quant::host_grids().iq1s;
    // Multiplier j (0-15) is 3 bits at 3 (j % 4) of u16 scale word j / 4.
    const __m256i word = _mm256_setr_epi16(0, 0, 0, 0, 1, 1, 1, 1, 2, 2, 2, 2, 3, 3, 3, 3);
    const __m256i shift = _mm256_setr_epi16(0, 3, 6, 9, 0, 3, 6, 9, 0, 3, 6, 9, 0, 3, 6, 9);
    return dot_blocks<BlockIQ1_M>(w, x, n_blocks, 0.125f, [&](const BlockIQ1_M& b, const BlockQ8_K& a) {
        const __m256i words = _mm256_permutexvar_epi16(word, _mm256_castsi128_si256(_mm_cvtsi64_si128(static_cast<int64_t>(load_u64(b.scales)))));
        const __m256i s = _mm256_and_si256(_mm256_srlv_epi16(words, shift), _mm256_set1_epi16(7));
        const __m512i per16 = _mm512_zextsi256_si512(_mm256_add_epi16(_mm256_add_epi16(s, s), _mm256_set1_epi16(1)));
        const __m512i offsets = _mm512_mullo_epi16(per16, _mm512_set1_epi16(-9));
        return four_steps(_mm512_dpwssd_epi32(_mm512_setzero_si512(), activation_sums(a), offsets), a, per16, nullptr, [&](int k) {
            const uint8_t* q = b.qs + 8 * k;
            const uint32_t qh = load_u32(b.qh + 4 * k);  // per 8 values: 3 high index bits, then the delta's sign
            int idx[8];
            for (int j = 0; j < 8; ++j) idx[j] = q[j] | ((qh >> (4 * j)) & 7) << 8;
            const uint64_t positive = _pdep_u64(_pext_u32(~qh, 0x88888888u), 0x0101010101010101ull) * 0xff;  // lanes of e = +1
            const __m512i g = iq1_bytes(grid_x8(grid, idx));
            return _mm512_mask_add_epi8(g, positive, g, _mm512_set1_epi8(2));
        });
    });
}


// ---- Grid lookups in registers (VBMI) --------------------------------------------------
//
// With AVX-512 VBMI a grid is looked up 64 indices at a time in registers, not entry by
// entry from memory. Each byte of an entry takes one of at most 4 values (IQ2) or 8 (IQ3),
// so an entry packs into 16 bits of codes: 8 x 2 bits or 4 x 3 bits. The low and the high
// bytes of all entries' codes make two byte tables (built at registration from
// host_grids()), read with vpermt2b 128 entries at a time and blended on the index's upper
// bits; then, per 64 values, vpermt2b puts each entry's two code bytes in a qword,
// vpmultishiftqb moves each code to a byte of its own, and vpermb turns codes into grid
// bytes. The 7-bit sign fields of IQ2_XXS and IQ3_XXS become sign bytes (parity in bit 7)
// through a 128-entry table read the same way. (IQ2_XS's dot product measured no faster
// this way, its 512-entry grid taking 14 lookups for 32 indices: it keeps the path above.)
//
// These functions run only where the CPU has VBMI (registered after a CPUID check).

#define GGUFKIT_VBMI __attribute__((target("avx512vbmi")))

struct PackedGrid {
    alignas(64) uint8_t lo[1024];    // low 8 bits of entry i's codes
    alignas(64) uint8_t hi[1024];    // high 8 bits
    alignas(64) uint8_t values[64];  // the grid byte of code i mod 2^bits
};
PackedGrid packed_iq2xxs, packed_iq2s, packed_iq3xxs, packed_iq3s;
alignas(64) uint8_t sign_table[128];  // signs_from7x4's byte for 7 bits i: i, parity in bit 7

// Packs the n entries of a grid; false if its bytes take more than 2^bits values.
template <typename Entry>
bool pack_grid(const Entry* grid, int n, int bits, PackedGrid& p) {
    int count = 0;
    uint8_t seen[8] = {};
    for (int i = 0; i < n; ++i) {
        uint32_t code = 0;
        for (int j = 0; j < static_cast<int>(sizeof(Entry)); ++j) {
            const auto byte = static_cast<uint8_t>(grid[i] >> (8 * j));
            int c = 0;
            while (c < count && seen[c] != byte) ++c;
            if (c == count) {
                if (count == (1 << bits)) return false;
                seen[count++] = byte;
            }
            code |= static_cast<uint32_t>(c) << (bits * j);
        }
        p.lo[i] = static_cast<uint8_t>(code);
        p.hi[i] = static_cast<uint8_t>(code >> 8);
    }
    for (int i = 0; i < 64; ++i) p.values[i] = seen[i & ((1 << bits) - 1)];
    return true;
}

bool pack_grids() {
    const quant::IqGrids& g = quant::host_grids();
    for (uint32_t i = 0; i < 128; ++i) sign_table[i] = static_cast<uint8_t>(signs_from7x4(i));
    return pack_grid(g.iq2xxs, quant::kIQ2XXSGridSize, 2, packed_iq2xxs) &&
           pack_grid(g.iq2s, quant::kIQ2SGridSize, 2, packed_iq2s) && pack_grid(g.iq3xxs, quant::kIQ3XXSGridSize, 3, packed_iq3xxs) &&
           pack_grid(g.iq3s, quant::kIQ3SGridSize, 3, packed_iq3s);
}

__m512i load64(const uint8_t* p) { return _mm512_load_si512(p); }

// Table bytes of 64 indices (bytes of idx; a 9th and 10th index bit from the masks).
GGUFKIT_VBMI __m512i lookup128(const uint8_t* t, __m512i idx) { return _mm512_permutex2var_epi8(load64(t), idx, load64(t + 64)); }
GGUFKIT_VBMI __m512i lookup256(const uint8_t* t, __m512i idx) {
    return _mm512_mask_blend_epi8(_mm512_movepi8_mask(idx), lookup128(t, idx), lookup128(t + 128, idx));
}
GGUFKIT_VBMI __m512i lookup512(const uint8_t* t, __m512i idx, __mmask64 bit8) {
    return _mm512_mask_blend_epi8(bit8, lookup256(t, idx), lookup256(t + 256, idx));
}
GGUFKIT_VBMI __m512i lookup1024(const uint8_t* t, __m512i idx, __mmask64 bit8, __mmask64 bit9) {
    return _mm512_mask_blend_epi8(bit9, lookup512(t, idx, bit8), lookup512(t + 512, idx, bit8));
}

// The 64 grid bytes of entries first .. first + 7 (IQ2: 8 codes of 2 bits), from their code
// bytes at lo[e] and hi[e].
GGUFKIT_VBMI __m512i expand_iq2(__m512i lo, __m512i hi, int first, __m512i values) {
    const __m512i pick = _mm512_add_epi8(_mm512_set_epi64(0x4707470747074707, 0x4606460646064606, 0x4505450545054505, 0x4404440444044404,
                                                          0x4303430343034303, 0x4202420242024202, 0x4101410141014101, 0x4000400040004000),
                                         _mm512_set1_epi8(static_cast<char>(first)));
    const __m512i codes = _mm512_permutex2var_epi8(lo, pick, hi);
    return _mm512_permutexvar_epi8(_mm512_multishift_epi64_epi8(_mm512_set1_epi64(0x0e0c0a0806040200), codes), values);
}
// The same for entries first .. first + 15 (IQ3: 4 codes of 3 bits).
GGUFKIT_VBMI __m512i expand_iq3(__m512i lo, __m512i hi, int first, __m512i values) {
    const __m512i pick = _mm512_add_epi8(_mm512_set_epi64(0x4f0f4e0e4f0f4e0e, 0x4d0d4c0c4d0d4c0c, 0x4b0b4a0a4b0b4a0a, 0x4909480849094808,
                                                          0x4707460647074606, 0x4505440445054404, 0x4303420243034202, 0x4101400041014000),
                                         _mm512_set1_epi8(static_cast<char>(first)));
    const __m512i codes = _mm512_permutex2var_epi8(lo, pick, hi);
    return _mm512_permutexvar_epi8(_mm512_multishift_epi64_epi8(_mm512_set1_epi64(0x1916131009060300), codes), values);
}

// Sign bytes (parity completed) of the 7-bit fields in the low 7 bits of each byte of s7.
GGUFKIT_VBMI __m512i sign_bytes(__m512i s7) { return _mm512_permutex2var_epi8(load64(sign_table), s7, load64(sign_table + 64)); }

// IQ2_XXS's 8 u32 sign-and-scale words (after each 4 indices) to 32 sign bytes.
GGUFKIT_VBMI __m256i iq2_xxs_signs(__m512i qs) {
    return _mm512_cvtepi64_epi32(sign_bytes(_mm512_multishift_epi64_epi8(_mm512_set1_epi64(0x352e2720), qs)));
}
// IQ3_XXS's 8 u32 sign-and-scale words to 32 sign bytes.
GGUFKIT_VBMI __m256i iq3_xxs_signs(__m256i meta) {
    return _mm512_castsi512_si256(sign_bytes(_mm512_zextsi256_si512(_mm256_multishift_epi64_epi8(_mm256_set1_epi64x(0x352e2720150e0700), meta))));
}
// The grid bytes of each block's 256 values, as four steps of 64.
struct GridBytes {
    __m512i step[4];
};

GGUFKIT_VBMI GridBytes grid_iq2_xxs(const BlockIQ2_XXS& b, __m512i values) {
    const __m512i idx = _mm512_zextsi256_si512(_mm512_cvtepi64_epi32(_mm512_loadu_si512(b.qs)));
    const __m512i lo = lookup256(packed_iq2xxs.lo, idx), hi = lookup256(packed_iq2xxs.hi, idx);
    return {{expand_iq2(lo, hi, 0, values), expand_iq2(lo, hi, 8, values), expand_iq2(lo, hi, 16, values), expand_iq2(lo, hi, 24, values)}};
}
GGUFKIT_VBMI GridBytes grid_iq2_s(const BlockIQ2_S& b, __m512i values) {
    const __m512i idx = _mm512_zextsi256_si512(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(b.qs)));
    const uint64_t qh = load_u64(b.qh);  // bits 2i and 2i + 1: index i's bits 8 and 9
    const __mmask64 bit8 = _pext_u64(qh, 0x5555555555555555ull), bit9 = _pext_u64(qh, 0xaaaaaaaaaaaaaaaaull);
    const __m512i lo = lookup1024(packed_iq2s.lo, idx, bit8, bit9), hi = lookup1024(packed_iq2s.hi, idx, bit8, bit9);
    return {{expand_iq2(lo, hi, 0, values), expand_iq2(lo, hi, 8, values), expand_iq2(lo, hi, 16, values), expand_iq2(lo, hi, 24, values)}};
}
GGUFKIT_VBMI GridBytes grid_iq3_xxs(const BlockIQ3_XXS& b, __m512i values) {
    const __m512i idx = _mm512_loadu_si512(b.qs);
    const __m512i lo = lookup256(packed_iq3xxs.lo, idx), hi = lookup256(packed_iq3xxs.hi, idx);
    return {{expand_iq3(lo, hi, 0, values), expand_iq3(lo, hi, 16, values), expand_iq3(lo, hi, 32, values), expand_iq3(lo, hi, 48, values)}};
}
GGUFKIT_VBMI GridBytes grid_iq3_s(const BlockIQ3_S& b, __m512i values) {
    const __m512i idx = _mm512_loadu_si512(b.qs);
    const __mmask64 bit8 = load_u64(b.qh);  // bit i: index i's bit 8
    const __m512i lo = lookup512(packed_iq3s.lo, idx, bit8), hi = lookup512(packed_iq3s.hi, idx, bit8);
    return {{expand_iq3(lo, hi, 0, values), expand_iq3(lo, hi, 16, values), expand_iq3(lo, hi, 32, values), expand_iq3(lo, hi, 48, values)}};
}

// ---- Dot products (VBMI) ---

// A block's grid bytes, the sign masks of its four steps of 64 values and its 16 multipliers.
struct VbmiBlock {
    GridBytes grid;
    alignas(32) uint64_t signs[4];
    __m512i per16;
};

GGUFKIT_VBMI VbmiBlock vbmi_block(const BlockIQ2_XXS& b, __m512i values) {
    VbmiBlock v;
    const __m512i qs = _mm512_loadu_si512(b.qs);
    v.per16 = per32_multipliers(_mm256_cvtepi32_epi16(_mm512_cvtepi64_epi32(_mm512_srli_epi64(qs, 60))));
    _mm256_store_si256(reinterpret_cast<__m256i*>(v.signs), iq2_xxs_signs(qs));
    v.grid = grid_iq2_xxs(b, values);
    return v;
}
GGUFKIT_VBMI VbmiBlock vbmi_block(const BlockIQ2_S& b, __m512i values) {
    VbmiBlock v;
    v.per16 = nibble_multipliers(load_u64(b.scales));
    for (int k = 0; k < 4; ++k) v.signs[k] = load_u64(b.qs + 32 + 8 * k);
    v.grid = grid_iq2_s(b, values);
    return v;
}
GGUFKIT_VBMI VbmiBlock vbmi_block(const BlockIQ3_XXS& b, __m512i values) {
    VbmiBlock v;
    const __m256i meta = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(b.qs + 64));
    v.per16 = per32_multipliers(_mm256_cvtepi32_epi16(_mm256_srli_epi32(meta, 28)));
    _mm256_store_si256(reinterpret_cast<__m256i*>(v.signs), iq3_xxs_signs(meta));
    v.grid = grid_iq3_xxs(b, values);
    return v;
}
GGUFKIT_VBMI VbmiBlock vbmi_block(const BlockIQ3_S& b, __m512i values) {
    VbmiBlock v;
    const __m128i packed = _mm_cvtsi32_si128(static_cast<int>(load_u32(b.scales)));  // 8 scales of 4 bits, low nibble first
    const __m128i s8 = _mm_cvtepu8_epi16(_mm_unpacklo_epi8(_mm_and_si128(packed, _mm_set1_epi8(0x0f)), _mm_and_si128(_mm_srli_epi16(packed, 4), _mm_set1_epi8(0x0f))));
    v.per16 = per32_multipliers(s8);
    for (int k = 0; k < 4; ++k) v.signs[k] = load_u64(b.signs + 8 * k);
    v.grid = grid_iq3_s(b, values);
    return v;
}

// The dot product of blocks whose grid is packed in `grid`; scale: the format's fixed factor
// (as dot_blocks).
template <class Block> GGUFKIT_VBMI float dot_vbmi(const uint8_t* w, const uint8_t* x, int64_t n_blocks, const PackedGrid& grid, float scale) {
    const __m512i values = load64(grid.values);
    const auto* b = reinterpret_cast<const Block*>(w);
    const auto* a = reinterpret_cast<const BlockQ8_K*>(x);
    __m512 sum = _mm512_setzero_ps();
    for (int64_t i = 0; i < n_blocks; ++i, ++b, ++a) {
        const VbmiBlock v = vbmi_block(*b, values);
        __m512i acc = _mm512_setzero_si512();
        for (int k = 0; k < 4; ++k) acc = step(acc, v.grid.step[k], a->qs + 64 * k, v.signs[k], step_multipliers(v.per16, k));
        sum = add_block(sum, half_to_float(b->d) * f32_field(a->d) * scale, acc);
    }
    return hsum(sum);
}

GGUFKIT_VBMI float dot_iq2_xxs_vbmi(const uint8_t* w, const uint8_t* x, int64_t n_blocks) { return dot_vbmi<BlockIQ2_XXS>(w, x, n_blocks, packed_iq2xxs, 0.125f); }
GGUFKIT_VBMI float dot_iq2_s_vbmi(const uint8_t* w, const uint8_t* x, int64_t n_blocks) { return dot_vbmi<BlockIQ2_S>(w, x, n_blocks, packed_iq2s, 0.125f); }
GGUFKIT_VBMI float dot_iq3_xxs_vbmi(const uint8_t* w, const uint8_t* x, int64_t n_blocks) { return dot_vbmi<BlockIQ3_XXS>(w, x, n_blocks, packed_iq3xxs, 0.25f); }
GGUFKIT_VBMI float dot_iq3_s_vbmi(const uint8_t* w, const uint8_t* x, int64_t n_blocks) { return dot_vbmi<BlockIQ3_S>(w, x, n_blocks, packed_iq3s, 1.0f); }

// ---- Dequantization (VBMI) ---

// 64 values from their grid bytes: 16 at a time, db[h] for values 16h .. 16h + 15, the sign
// bit flipped where bit i of `negative` is set.
GGUFKIT_VBMI void put64(float* y, __m512i grid, uint64_t negative, __m512 db0, __m512 db1, __m512 db2, __m512 db3) {
    put16(y, _mm512_castsi512_si128(grid), static_cast<__mmask16>(negative), db0);
    put16(y + 16, _mm512_extracti32x4_epi32(grid, 1), static_cast<__mmask16>(negative >> 16), db1);
    put16(y + 32, _mm512_extracti32x4_epi32(grid, 2), static_cast<__mmask16>(negative >> 32), db2);
    put16(y + 48, _mm512_extracti32x4_epi32(grid, 3), static_cast<__mmask16>(negative >> 48), db3);
}

GGUFKIT_VBMI void dequantize_iq3_xxs_vbmi(const uint8_t* src, float* y, int64_t n_blocks) {
    const __m512i values = load64(packed_iq3xxs.values);
    for (const auto* b = reinterpret_cast<const BlockIQ3_XXS*>(src); n_blocks-- > 0; ++b, y += 256) {
        const float d = half_to_float(b->d);
        const __m256i meta = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(b->qs + 64));
        alignas(32) uint64_t signs[4];
        _mm256_store_si256(reinterpret_cast<__m256i*>(signs), iq3_xxs_signs(meta));
        const GridBytes g = grid_iq3_xxs(*b, values);
        for (int k = 0; k < 4; ++k) {
            const __m512 db0 = _mm512_set1_ps(half_step_scale(d, load_u32(b->qs + 64 + 8 * k) >> 28, 0.5f));
            const __m512 db1 = _mm512_set1_ps(half_step_scale(d, load_u32(b->qs + 68 + 8 * k) >> 28, 0.5f));
            put64(y + 64 * k, g.step[k], signs[k], db0, db0, db1, db1);
        }
    }
}

GGUFKIT_VBMI void dequantize_iq3_s_vbmi(const uint8_t* src, float* y, int64_t n_blocks) {
    const __m512i values = load64(packed_iq3s.values);
    for (const auto* b = reinterpret_cast<const BlockIQ3_S*>(src); n_blocks-- > 0; ++b, y += 256) {
        const float d = half_to_float(b->d);
        const GridBytes g = grid_iq3_s(*b, values);
        for (int k = 0; k < 4; ++k) {
            const __m512 db0 = _mm512_set1_ps(d * static_cast<float>(1 + 2 * (b->scales[k] & 0x0f)));
            const __m512 db1 = _mm512_set1_ps(d * static_cast<float>(1 + 2 * (b->scales[k] >> 4)));
            put64(y + 64 * k, g.step[k], load_u64(b->signs + 8 * k), db0, db0, db1, db1);
        }
    }
}

}  // namespace

void add_iquants(detail::Table& t) {
    t.set_dequantize(TypeId::IQ2_XXS, dequantize_iq2_xxs);
    t.set_dequantize(TypeId::IQ2_XS, dequantize_iq2_xs);
    t.set_dequantize(TypeId::IQ2_S, dequantize_iq2_s);
    t.set_dequantize(TypeId::IQ3_XXS, dequantize_iq3_xxs);
    t.set_dequantize(TypeId::IQ3_S, dequantize_iq3_s);
    t.set_dequantize(TypeId::IQ1_S, dequantize_iq1_s);
    t.set_dequantize(TypeId::IQ1_M, dequantize_iq1_m);
    t.set_dot(TypeId::IQ2_XXS, dot_iq2_xxs);
    t.set_dot(TypeId::IQ2_XS, dot_iq2_xs);
    t.set_dot(TypeId::IQ2_S, dot_iq2_s);
    t.set_dot(TypeId::IQ3_XXS, dot_iq3_xxs);
    t.set_dot(TypeId::IQ3_S, dot_iq3_s);
    t.set_dot(TypeId::IQ1_S, dot_iq1_s);
    t.set_dot(TypeId::IQ1_M, dot_iq1_m);
    if (detail::cpu_has_avx512_vbmi() && pack_grids()) {
        t.set_dot(TypeId::IQ2_XXS, dot_iq2_xxs_vbmi);
        t.set_dot(TypeId::IQ2_S, dot_iq2_s_vbmi);
        t.set_dot(TypeId::IQ3_XXS, dot_iq3_xxs_vbmi);
        t.set_dot(TypeId::IQ3_S, dot_iq3_s_vbmi);
        t.set_dequantize(TypeId::IQ3_XXS, dequantize_iq3_xxs_vbmi);
        t.set_dequantize(TypeId::IQ3_S, dequantize_iq3_s_vbmi);
    }
}

}  // namespace kernels::avx512
