// iquants, avx2 path: the grid i-quants IQ1_S, IQ1_M, IQ2_XXS, IQ2_XS, IQ2_S, IQ3_XXS, IQ3_S.
//
// Dequantization equals quant/decode.h bit for bit. Each 8 values are one grid entry (two
// for IQ3) widened to floats, multiplied by the scale, then the sign bit flipped where the
// value is negative, as the decoder's apply_sign negates (flipping a NaN's sign too).
// IQ1's g + delta is exact in floats.
// f16 scales go through vcvtph2ps, which quiets a signalling NaN: the decoder's first
// multiplication quiets it too, and every scale here is multiplied before it is stored.
//
// IQ3 blocks whose d is not NaN go 32 values a step, the signs applied to the grid bytes.
//
// Dot products with Q8_K activations: grid bytes (unsigned) times signed activation codes
// with maddubs, the signs applied to the activations, then madd with the integer scale
// multipliers of each 16 values; one float multiply-add per block (see the section below).
// The loop over blocks of the dot products (dot_blocks) and the scale helpers both paths use
// are in iquants_simd.h.
#include <immintrin.h>

#include <cmath>
#include <cstdint>

#include "iquants_simd.h"
#include "quant/blocks.h"
#include "quant/grids.h"
#include "table.h"

namespace kernels::avx2 {

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

__m256i sign_mask(const uint8_t* p);
__m256i grid8(const uint32_t* grid, const int* i);
__m256i signs_from7x4_x8(__m256i m);
void iq3_s_indices(const BlockIQ3_S& b, uint16_t* index);

// The float sign bit in lane j where bit j of `signs` is set (bits above 7 ignored).
__m256 sign_lanes(uint32_t signs) {
    const __m256i shifts = _mm256_setr_epi32(31, 30, 29, 28, 27, 26, 25, 24);
    const __m256i moved = _mm256_sllv_epi32(_mm256_set1_epi32(static_cast<int>(signs)), shifts);
    return _mm256_castsi256_ps(_mm256_and_si256(moved, _mm256_set1_epi32(INT32_MIN)));
}

// 8 values dl x (+-g) from 8 unsigned grid bytes.
void put8(float* y, uint64_t entry, uint32_t signs, __m256 dl) {
    const __m256 g = _mm256_cvtepi32_ps(_mm256_cvtepu8_epi32(_mm_cvtsi64_si128(static_cast<int64_t>(entry))));
    _mm256_storeu_ps(y, _mm256_xor_ps(_mm256_mul_ps(dl, g), sign_lanes(signs)));
}

// 8 IQ1 values dl x (g + delta) from 8 signed grid bytes.
void put8_iq1(float* y, uint64_t entry, __m256 delta, __m256 dl) {
    const __m256 g = _mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(_mm_cvtsi64_si128(static_cast<int64_t>(entry))));
    _mm256_storeu_ps(y, _mm256_mul_ps(dl, _mm256_add_ps(g, delta)));
}

void dequantize_iq2_xxs(const uint8_t* src, float* y, int64_t n_blocks) {
    const uint64_t* grid = quant::host_grids().iq2xxs;
    for (const auto* b = reinterpret_cast<const BlockIQ2_XXS*>(src); n_blocks-- > 0; ++b) {
        const float d = half_to_float(b->d);
        for (int ib = 0; ib < 8; ++ib, y += 32) {
            const uint8_t* q = b->qs + 8 * ib;
            const uint32_t meta = load_u32(q + 4);
            const __m256 db = _mm256_set1_ps(half_step_scale(d, meta >> 28, 0.25f));
            const uint32_t signs = signs_from7x4(meta);
            for (int l = 0; l < 4; ++l) put8(y + 8 * l, grid[q[l]], signs >> (8 * l), db);
        }
    }
}

void dequantize_iq2_xs(const uint8_t* src, float* y, int64_t n_blocks) {
    const uint64_t* grid = quant::host_grids().iq2xs;
    for (const auto* b = reinterpret_cast<const BlockIQ2_XS*>(src); n_blocks-- > 0; ++b) {
        const float d = half_to_float(b->d);
        for (int ib = 0; ib < 8; ++ib, y += 32) {
            const __m256 db[2] = {_mm256_set1_ps(half_step_scale(d, b->scales[ib] & 0x0f, 0.25f)), _mm256_set1_ps(half_step_scale(d, b->scales[ib] >> 4, 0.25f))};
            const uint64_t codes = load_u64(b->qs + 8 * ib);  // four u16: 9-bit index, 7 sign bits
            const uint32_t signs = signs_from7x4(static_cast<uint32_t>(_pext_u64(codes, 0xfe00fe00fe00fe00ull)));
            for (int l = 0; l < 4; ++l) put8(y + 8 * l, grid[(codes >> (16 * l)) & 511], signs >> (8 * l), db[l / 2]);
        }
    }
}

void dequantize_iq2_s(const uint8_t* src, float* y, int64_t n_blocks) {
    const uint64_t* grid = quant::host_grids().iq2s;
    for (const auto* b = reinterpret_cast<const BlockIQ2_S*>(src); n_blocks-- > 0; ++b) {
        const float d = half_to_float(b->d);
        for (int ib = 0; ib < 8; ++ib, y += 32) {
            const __m256 db[2] = {_mm256_set1_ps(half_step_scale(d, b->scales[ib] & 0x0f, 0.25f)), _mm256_set1_ps(half_step_scale(d, b->scales[ib] >> 4, 0.25f))};
            const uint32_t signs = load_u32(b->qs + 32 + 4 * ib);
            const int qh = b->qh[ib];
            for (int l = 0; l < 4; ++l) {
                const int index = b->qs[4 * ib + l] | ((qh << (8 - 2 * l)) & 0x300);
                put8(y + 8 * l, grid[index], signs >> (8 * l), db[l / 2]);
            }
        }
    }
}

// IQ3, 32 values of a group at a time where the block's d is not NaN: the grid bytes
// negated as integers under the sign mask, then widened and multiplied, dl x (-g) being
// -(dl x g) bit for bit for any dl but NaN (whose sign the decoder's negation flips, so a
// block with a NaN d goes 8 values at a time as above).
void put32_signed(float* y, __m256i grid, const uint8_t* signs, __m256 dl);

// One IQ3_XXS block, 8 values at a time.
void dequantize_iq3_8(const BlockIQ3_XXS& b, const uint32_t* grid, float* y) {
    const float d = half_to_float(b.d);
    for (int ib = 0; ib < 8; ++ib, y += 32) {
        const uint32_t meta = load_u32(b.qs + 64 + 4 * ib);
        const __m256 db = _mm256_set1_ps(half_step_scale(d, meta >> 28, 0.5f));
        const uint32_t signs = signs_from7x4(meta);
        const uint8_t* idx = b.qs + 8 * ib;
        for (int l = 0; l < 4; ++l) put8(y + 8 * l, grid[idx[2 * l]] | uint64_t{grid[idx[2 * l + 1]]} << 32, signs >> (8 * l), db);
    }
}

// One IQ3_XXS block whose d is not NaN, 32 values at a time.
void dequantize_iq3_32(const BlockIQ3_XXS& b, const uint32_t* grid, float d, float* y) {
    alignas(32) uint8_t signs[32];
    _mm256_store_si256(reinterpret_cast<__m256i*>(signs), signs_from7x4_x8(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(b.qs + 64))));
    for (int ib = 0; ib < 8; ++ib) {
        const uint8_t* q = b.qs + 8 * ib;
        const int idx[8] = {q[0], q[1], q[2], q[3], q[4], q[5], q[6], q[7]};
        const __m256 db = _mm256_set1_ps(half_step_scale(d, load_u32(b.qs + 64 + 4 * ib) >> 28, 0.5f));
        put32_signed(y + 32 * ib, grid8(grid, idx), signs + 4 * ib, db);
    }
}

// One IQ3_S block, 8 values at a time.
void dequantize_iq3_8(const BlockIQ3_S& b, const uint32_t* grid, float* y) {
    const float d = half_to_float(b.d);
    for (int ib = 0; ib < 8; ++ib, y += 32) {
        const int scale = (b.scales[ib / 2] >> (4 * (ib % 2))) & 0x0f;
        const __m256 db = _mm256_set1_ps(d * static_cast<float>(1 + 2 * scale));
        const uint32_t signs = load_u32(b.signs + 4 * ib);
        const uint8_t* idx = b.qs + 8 * ib;
        const int qh = b.qh[ib];
        for (int l = 0; l < 4; ++l) {
            const int first = idx[2 * l] | ((qh << (8 - 2 * l)) & 256);
            const int second = idx[2 * l + 1] | ((qh << (7 - 2 * l)) & 256);
            put8(y + 8 * l, grid[first] | uint64_t{grid[second]} << 32, signs >> (8 * l), db);
        }
    }
}

// One IQ3_S block whose d is not NaN, 32 values at a time.
void dequantize_iq3_32(const BlockIQ3_S& b, const uint32_t* grid, float d, float* y) {
    alignas(32) uint16_t index[64];
    iq3_s_indices(b, index);
    for (int ib = 0; ib < 8; ++ib) {
        const uint16_t* q = index + 8 * ib;
        const int idx[8] = {q[0], q[1], q[2], q[3], q[4], q[5], q[6], q[7]};
        const __m256 db = _mm256_set1_ps(d * static_cast<float>(1 + 2 * ((b.scales[ib / 2] >> (4 * (ib % 2))) & 0x0f)));
        put32_signed(y + 32 * ib, grid8(grid, idx), b.signs + 4 * ib, db);
    }
}

// IQ3_XXS and IQ3_S blocks, 32 values a step, or 8 where d is NaN.
template <class Block> void dequantize_iq3(const uint8_t* src, float* y, int64_t n_blocks, const uint32_t* grid) {
    for (const auto* b = reinterpret_cast<const Block*>(src); n_blocks-- > 0; ++b, y += 256) {
        const float d = half_to_float(b->d);
        if (std::isnan(d))
            dequantize_iq3_8(*b, grid, y);
        else
            dequantize_iq3_32(*b, grid, d, y);
    }
}

void dequantize_iq3_xxs(const uint8_t* src, float* y, int64_t n_blocks) { dequantize_iq3<BlockIQ3_XXS>(src, y, n_blocks, quant::host_grids().iq3xxs); }
void dequantize_iq3_s(const uint8_t* src, float* y, int64_t n_blocks) { dequantize_iq3<BlockIQ3_S>(src, y, n_blocks, quant::host_grids().iq3s); }

void dequantize_iq1_s(const uint8_t* src, float* y, int64_t n_blocks) {
    const uint64_t* grid = quant::host_grids().iq1s;
    for (const auto* b = reinterpret_cast<const BlockIQ1_S*>(src); n_blocks-- > 0; ++b) {
        const float d = half_to_float(b->d);
        for (int ib = 0; ib < 8; ++ib, y += 32) {
            const uint32_t qh = load_u16(b->qh + 2 * ib);
            const __m256 dl = _mm256_set1_ps(d * static_cast<float>(2 * ((qh >> 12) & 7) + 1));
            const __m256 delta = _mm256_set1_ps(qh & 0x8000 ? -0.125f : 0.125f);
            for (int l = 0; l < 4; ++l) put8_iq1(y + 8 * l, grid[b->qs[4 * ib + l] | ((qh >> (3 * l)) & 7) << 8], delta, dl);
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
            const __m256 dl[2] = {_mm256_set1_ps(d * static_cast<float>(2 * ((sc >> shift) & 7) + 1)),
                                  _mm256_set1_ps(d * static_cast<float>(2 * ((sc >> (shift + 3)) & 7) + 1))};
            const uint32_t qh = load_u16(b->qh + 2 * ib);  // per 8 values: 3 high index bits, then the delta's sign
            for (int l = 0; l < 4; ++l) {
                const uint32_t h = qh >> (4 * l);
                const __m256 delta = _mm256_set1_ps(h & 8 ? -0.125f : 0.125f);
                put8_iq1(y + 8 * l, grid[b->qs[4 * ib + l] | (h & 7) << 8], delta, dl[l / 2]);
            }
        }
    }
}

// ---- Dot products with Q8_K activations ------------------------------------------------
//
// Per block, first in vectors: the 32 sign bytes (parity completed where the format stores
// 7 bits) and the integer multipliers 2s + 1, both stored to small aligned arrays. Then per
// 32 values: the grid entries, each loaded by a broadcast and blended into place (no
// shuffles); the group's 4 sign bytes broadcast from the array and spread to a byte mask;
// the activation codes negated under it; maddubs, then madd with the multipliers (loaded
// by broadcasts too).

// 0xff in byte j of 32 where bit j of the 4 sign bytes at p is set.
__m256i sign_mask(const uint8_t* p) {
    const __m256i spread = _mm256_setr_epi8(0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 1, 1, 1, 1, 2, 2, 2, 2, 2, 2, 2, 2, 3, 3, 3, 3, 3, 3, 3, 3);
    const __m256i bits = _mm256_set1_epi64x(static_cast<int64_t>(0x8040201008040201ull));
    const __m256i v = _mm256_shuffle_epi8(_mm256_set1_epi32(static_cast<int>(load_u32(p))), spread);
    return _mm256_cmpeq_epi8(_mm256_and_si256(v, bits), bits);
}

// 32 activation codes, negated where bit j of the 4 sign bytes at `signs` is set (codes are within +-127).
__m256i signed_codes(const int8_t* q, const uint8_t* signs) {
    const __m256i m = sign_mask(signs);
    const __m256i v = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(q));
    return _mm256_sub_epi8(_mm256_xor_si256(v, m), m);
}

// acc + per-16 sums of grid x code, times the multipliers.
__m256i accumulate(__m256i acc, __m256i grid, __m256i codes, __m256i scales) {
    return _mm256_add_epi32(acc, _mm256_madd_epi16(_mm256_maddubs_epi16(grid, codes), scales));
}

// A u64 or u32 from memory in every lane (a load, no shuffle).
__m256i broadcast64(const uint64_t* p) { return _mm256_castpd_si256(_mm256_broadcast_sd(reinterpret_cast<const double*>(p))); }
__m256i broadcast32(const void* p) { return _mm256_castps_si256(_mm256_broadcast_ss(static_cast<const float*>(p))); }

// The grid entries of 4 indices (8 bytes each) or of 8 (4 bytes each), in order.
__m256i grid4(const uint64_t* grid, int i0, int i1, int i2, int i3) {
    __m256i v = _mm256_castsi128_si256(_mm_loadl_epi64(reinterpret_cast<const __m128i*>(grid + i0)));
    v = _mm256_blend_epi32(v, broadcast64(grid + i1), 0x0c);
    v = _mm256_blend_epi32(v, broadcast64(grid + i2), 0x30);
    return _mm256_blend_epi32(v, broadcast64(grid + i3), 0xc0);
}
__m256i grid8(const uint32_t* grid, const int* i) {
    __m256i v = _mm256_castsi128_si256(_mm_cvtsi32_si128(static_cast<int>(grid[i[0]])));
    v = _mm256_blend_epi32(v, broadcast32(grid + i[1]), 0x02);
    v = _mm256_blend_epi32(v, broadcast32(grid + i[2]), 0x04);
    v = _mm256_blend_epi32(v, broadcast32(grid + i[3]), 0x08);
    v = _mm256_blend_epi32(v, broadcast32(grid + i[4]), 0x10);
    v = _mm256_blend_epi32(v, broadcast32(grid + i[5]), 0x20);
    v = _mm256_blend_epi32(v, broadcast32(grid + i[6]), 0x40);
    return _mm256_blend_epi32(v, broadcast32(grid + i[7]), 0x80);
}

// Multipliers 2s + 1 as i16 pairs, one u32 per scale: for 8 scales of 32 values (in u32
// lanes) or 16 scales of 16 values (from 8 bytes of two nibbles, low first).
void per32_multipliers(__m256i s, uint32_t* m) {
    const __m256i v = _mm256_add_epi32(_mm256_add_epi32(s, s), _mm256_set1_epi32(1));
    _mm256_store_si256(reinterpret_cast<__m256i*>(m), _mm256_or_si256(v, _mm256_slli_epi32(v, 16)));
}
void nibble_multipliers(uint64_t scales, uint32_t* m) {
    const __m128i b = _mm_cvtsi64_si128(static_cast<int64_t>(scales));
    const __m128i nibbles = _mm_unpacklo_epi8(_mm_and_si128(b, _mm_set1_epi8(0x0f)), _mm_and_si128(_mm_srli_epi16(b, 4), _mm_set1_epi8(0x0f)));
    per32_multipliers(_mm256_cvtepu8_epi32(nibbles), m);
    per32_multipliers(_mm256_cvtepu8_epi32(_mm_unpackhi_epi64(nibbles, nibbles)), m + 8);
}
// The multipliers of group ib (32 values): one for all, or one per 16 values.
__m256i group_multiplier(const uint32_t* m, int ib) { return broadcast32(m + ib); }
__m256i group_multipliers(const uint32_t* m, int ib) { return _mm256_blend_epi32(broadcast32(m + 2 * ib), broadcast32(m + 2 * ib + 1), 0xf0); }

// signs_from7x4 on 8 u32 at once.
__m256i signs_from7x4_x8(__m256i m) {
    const __m256i r = _mm256_or_si256(_mm256_or_si256(_mm256_and_si256(m, _mm256_set1_epi32(0x7f)), _mm256_and_si256(_mm256_slli_epi32(m, 1), _mm256_set1_epi32(0x7f00))),
                                      _mm256_or_si256(_mm256_and_si256(_mm256_slli_epi32(m, 2), _mm256_set1_epi32(0x7f0000)), _mm256_and_si256(_mm256_slli_epi32(m, 3), _mm256_set1_epi32(0x7f000000))));
    __m256i p = _mm256_xor_si256(r, _mm256_srli_epi32(r, 4));
    p = _mm256_xor_si256(p, _mm256_srli_epi32(p, 2));
    p = _mm256_xor_si256(p, _mm256_srli_epi32(p, 1));
    return _mm256_or_si256(r, _mm256_and_si256(_mm256_slli_epi32(p, 7), _mm256_set1_epi32(static_cast<int>(0x80808080u))));
}

// IQ2_XXS and IQ3_XXS: from their 8 u32 words of 4 x 7 sign bits and a 4-bit scale s, the 32
// sign bytes and the 8 multipliers 2s + 1.
void xxs_signs_and_multipliers(__m256i meta, uint8_t* signs, uint32_t* mult) {
    _mm256_store_si256(reinterpret_cast<__m256i*>(signs), signs_from7x4_x8(meta));
    per32_multipliers(_mm256_srli_epi32(meta, 28), mult);
}

// The 64 IQ3_S indices with their ninth bit (bit i of qh), as u16.
void iq3_s_indices(const BlockIQ3_S& b, uint16_t* index) {
    const __m256i bit = _mm256_setr_epi16(1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024, 2048, 4096, 8192, 16384, -32768);
    for (int h = 0; h < 4; ++h) {
        const __m256i low = _mm256_cvtepu8_epi16(_mm_loadu_si128(reinterpret_cast<const __m128i*>(b.qs + 16 * h)));
        const __m256i high = _mm256_cmpeq_epi16(_mm256_and_si256(_mm256_set1_epi16(static_cast<int16_t>(load_u16(b.qh + 2 * h))), bit), bit);
        _mm256_store_si256(reinterpret_cast<__m256i*>(index + 16 * h), _mm256_or_si256(low, _mm256_and_si256(high, _mm256_set1_epi16(256))));
    }
}

void put32_signed(float* y, __m256i grid, const uint8_t* signs, __m256 dl) {
    const __m256i m = sign_mask(signs);
    const __m256i g = _mm256_sub_epi8(_mm256_xor_si256(grid, m), m);
    const __m128i lo = _mm256_castsi256_si128(g), hi = _mm256_extracti128_si256(g, 1);
    _mm256_storeu_ps(y, _mm256_mul_ps(dl, _mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(lo))));
    _mm256_storeu_ps(y + 8, _mm256_mul_ps(dl, _mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(_mm_unpackhi_epi64(lo, lo)))));
    _mm256_storeu_ps(y + 16, _mm256_mul_ps(dl, _mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(hi))));
    _mm256_storeu_ps(y + 24, _mm256_mul_ps(dl, _mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(_mm_unpackhi_epi64(hi, hi)))));
}


// IQ2_XXS: value = d (2s + 1) / 8 x g x sign.
float dot_iq2_xxs(const uint8_t* w, const uint8_t* x, int64_t n_blocks) {
    const uint64_t* grid = quant::host_grids().iq2xxs;
    return dot_blocks<BlockIQ2_XXS>(w, x, n_blocks, 0.125f, [&](const BlockIQ2_XXS& b, const BlockQ8_K& a) {
        // The u32 after each 4 indices: odd u32s of the 64 bytes.
        const __m256 lo = _mm256_loadu_ps(reinterpret_cast<const float*>(b.qs)), hi = _mm256_loadu_ps(reinterpret_cast<const float*>(b.qs + 32));
        const __m256i meta = _mm256_permute4x64_epi64(_mm256_castps_si256(_mm256_shuffle_ps(lo, hi, 0xdd)), 0xd8);
        alignas(32) uint8_t signs[32];
        alignas(32) uint32_t mult[8];
        xxs_signs_and_multipliers(meta, signs, mult);
        __m256i acc = _mm256_setzero_si256();
        for (int ib = 0; ib < 8; ++ib) {
            const uint8_t* q = b.qs + 8 * ib;
            acc = accumulate(acc, grid4(grid, q[0], q[1], q[2], q[3]), signed_codes(a.qs + 32 * ib, signs + 4 * ib), group_multiplier(mult, ib));
        }
        return acc;
    });
}

float dot_iq2_xs(const uint8_t* w, const uint8_t* x, int64_t n_blocks) {
    const uint64_t* grid = quant::host_grids().iq2xs;
    return dot_blocks<BlockIQ2_XS>(w, x, n_blocks, 0.125f, [&](const BlockIQ2_XS& b, const BlockQ8_K& a) {
        // The 7 sign bits of the 32 codes, completed to bytes by even parity.
        alignas(32) uint8_t signs[32];
        alignas(32) uint32_t mult[16];
        __m256i s8[2];
        for (int h = 0; h < 2; ++h) {
            const __m256i s7 = _mm256_srli_epi16(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(b.qs + 32 * h)), 9);
            __m256i p = _mm256_xor_si256(s7, _mm256_srli_epi16(s7, 4));
            p = _mm256_xor_si256(p, _mm256_srli_epi16(p, 2));
            p = _mm256_xor_si256(p, _mm256_srli_epi16(p, 1));
            s8[h] = _mm256_or_si256(s7, _mm256_and_si256(_mm256_slli_epi16(p, 7), _mm256_set1_epi16(0x80)));
        }
        _mm256_store_si256(reinterpret_cast<__m256i*>(signs), _mm256_permute4x64_epi64(_mm256_packus_epi16(s8[0], s8[1]), 0xd8));
        nibble_multipliers(load_u64(b.scales), mult);
        __m256i acc = _mm256_setzero_si256();
        for (int ib = 0; ib < 8; ++ib) {
            const uint64_t codes = load_u64(b.qs + 8 * ib);
            const __m256i g = grid4(grid, codes & 511, (codes >> 16) & 511, (codes >> 32) & 511, (codes >> 48) & 511);
            acc = accumulate(acc, g, signed_codes(a.qs + 32 * ib, signs + 4 * ib), group_multipliers(mult, ib));
        }
        return acc;
    });
}

float dot_iq2_s(const uint8_t* w, const uint8_t* x, int64_t n_blocks) {
    const uint64_t* grid = quant::host_grids().iq2s;
    return dot_blocks<BlockIQ2_S>(w, x, n_blocks, 0.125f, [&](const BlockIQ2_S& b, const BlockQ8_K& a) {
        alignas(32) uint32_t mult[16];
        nibble_multipliers(load_u64(b.scales), mult);
        __m256i acc = _mm256_setzero_si256();
        for (int ib = 0; ib < 8; ++ib) {
            const uint8_t* q = b.qs + 4 * ib;
            const int qh = b.qh[ib];
            const __m256i g = grid4(grid, q[0] | ((qh << 8) & 0x300), q[1] | ((qh << 6) & 0x300), q[2] | ((qh << 4) & 0x300), q[3] | ((qh << 2) & 0x300));
            acc = accumulate(acc, g, signed_codes(a.qs + 32 * ib, b.qs + 32 + 4 * ib), group_multipliers(mult, ib));
        }
        return acc;
    });
}

// IQ3_XXS: value = d (2s + 1) / 4 x g x sign.
float dot_iq3_xxs(const uint8_t* w, const uint8_t* x, int64_t n_blocks) {
    const uint32_t* grid = quant::host_grids().iq3xxs;
    return dot_blocks<BlockIQ3_XXS>(w, x, n_blocks, 0.25f, [&](const BlockIQ3_XXS& b, const BlockQ8_K& a) {
        const __m256i meta = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(b.qs + 64));
        alignas(32) uint8_t signs[32];
        alignas(32) uint32_t mult[8];
        xxs_signs_and_multipliers(meta, signs, mult);
        __m256i acc = _mm256_setzero_si256();
        for (int ib = 0; ib < 8; ++ib) {
            const uint8_t* q = b.qs + 8 * ib;
            const int idx[8] = {q[0], q[1], q[2], q[3], q[4], q[5], q[6], q[7]};
            acc = accumulate(acc, grid8(grid, idx), signed_codes(a.qs + 32 * ib, signs + 4 * ib), group_multiplier(mult, ib));
        }
        return acc;
    });
}

// IQ3_S: value = d (2s + 1) x g x sign.
float dot_iq3_s(const uint8_t* w, const uint8_t* x, int64_t n_blocks) {
    const uint32_t* grid = quant::host_grids().iq3s;
    return dot_blocks<BlockIQ3_S>(w, x, n_blocks, 1.0f, [&](const BlockIQ3_S& b, const BlockQ8_K& a) {
        alignas(32) uint32_t mult[8];
        const __m128i packed = _mm_cvtsi32_si128(static_cast<int>(load_u32(b.scales)));  // 8 scales of 4 bits, low nibble first
        per32_multipliers(_mm256_cvtepu8_epi32(_mm_unpacklo_epi8(_mm_and_si128(packed, _mm_set1_epi8(0x0f)), _mm_and_si128(_mm_srli_epi16(packed, 4), _mm_set1_epi8(0x0f)))), mult);
        alignas(32) uint16_t index[64];
        iq3_s_indices(b, index);
        __m256i acc = _mm256_setzero_si256();
        for (int ib = 0; ib < 8; ++ib) {
            const uint16_t* q = index + 8 * ib;
            const int idx[8] = {q[0], q[1], q[2], q[3], q[4], q[5], q[6], q[7]};
            acc = accumulate(acc, grid8(grid, idx), signed_codes(a.qs + 32 * ib, b.signs + 4 * ib), group_multiplier(mult, ib));
        }
        return acc;
    });
}

// The i16 multipliers of 32 values: `low` for the first 16, `high` for the next.
__m256i scale_pair(int low, int high) { return _mm256_set_m128i(_mm_set1_epi16(static_cast<int16_t>(high)), _mm_set1_epi16(static_cast<int16_t>(low))); }

// IQ1: value = dl (g + delta) = dl (8g + e) / 8 with e = +-1. The unsigned bytes
// v = 8 (g + 1) + 1 + e = 8g + e + 9 (0 to 18) go through maddubs; the 9 x (sum of the codes)
// this adds comes back off through the activations' sums of 16.
__m256i iq1_bytes(__m256i grid, __m256i e_plus_1) {
    return _mm256_or_si256(_mm256_slli_epi16(_mm256_add_epi8(grid, _mm256_set1_epi8(1)), 3), e_plus_1);
}

float dot_iq1_s(const uint8_t* w, const uint8_t* x, int64_t n_blocks) {
    const uint64_t* grid = quant::host_grids().iq1s;
    return dot_blocks<BlockIQ1_S>(w, x, n_blocks, 0.125f, [&](const BlockIQ1_S& b, const BlockQ8_K& a) {
        __m256i acc = _mm256_setzero_si256();
        int correction = 0;
        for (int ib = 0; ib < 8; ++ib) {
            const uint32_t qh = load_u16(b.qh + 2 * ib);
            const uint8_t* q = b.qs + 4 * ib;
            const __m256i g = grid4(grid, q[0] | (qh & 7) << 8, q[1] | ((qh >> 3) & 7) << 8, q[2] | ((qh >> 6) & 7) << 8, q[3] | ((qh >> 9) & 7) << 8);
            const int s = 2 * static_cast<int>((qh >> 12) & 7) + 1;
            const __m256i e = _mm256_set1_epi8(qh & 0x8000 ? 0 : 2);
            const __m256i codes = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(a.qs + 32 * ib));
            acc = accumulate(acc, iq1_bytes(g, e), codes, _mm256_set1_epi16(static_cast<int16_t>(s)));
            correction += s * (static_cast<int16_t>(load_u16(a.bsums + 4 * ib)) + static_cast<int16_t>(load_u16(a.bsums + 4 * ib + 2)));
        }
        acc = _mm256_sub_epi32(acc, _mm256_setr_epi32(9 * correction, 0, 0, 0, 0, 0, 0, 0));
        return acc;
    });
}

float dot_iq1_m(const uint8_t* w, const uint8_t* x, int64_t n_blocks) {
    const uint64_t* grid = quant::host_grids().iq1s;
    const __m256i spread = _mm256_setr_epi8(0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 1, 1, 1, 1, 2, 2, 2, 2, 2, 2, 2, 2, 3, 3, 3, 3, 3, 3, 3, 3);
    return dot_blocks<BlockIQ1_M>(w, x, n_blocks, 0.125f, [&](const BlockIQ1_M& b, const BlockQ8_K& a) {
        __m256i acc = _mm256_setzero_si256();
        int correction = 0;
        const uint64_t scales = load_u64(b.scales);
        for (int ib = 0; ib < 8; ++ib) {
            const uint32_t qh = load_u16(b.qh + 2 * ib);  // per 8 values: 3 high index bits, then the delta's sign
            const uint8_t* q = b.qs + 4 * ib;
            const __m256i g = grid4(grid, q[0] | (qh & 7) << 8, q[1] | ((qh >> 4) & 7) << 8, q[2] | ((qh >> 8) & 7) << 8, q[3] | ((qh >> 12) & 7) << 8);
            const uint32_t positive = _pdep_u32(_pext_u32(~qh, 0x8888u), 0x02020202u);
            const __m256i e = _mm256_shuffle_epi8(_mm256_set1_epi32(static_cast<int>(positive)), spread);
            const int at = 16 * (ib / 2) + 6 * (ib % 2);  // two 3-bit scales per 32 values, three pairs per u16
            const int s0 = 2 * static_cast<int>((scales >> at) & 7) + 1;
            const int s1 = 2 * static_cast<int>((scales >> (at + 3)) & 7) + 1;
            const __m256i codes = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(a.qs + 32 * ib));
            acc = accumulate(acc, iq1_bytes(g, e), codes, scale_pair(s0, s1));
            correction += s0 * static_cast<int16_t>(load_u16(a.bsums + 4 * ib)) + s1 * static_cast<int16_t>(load_u16(a.bsums + 4 * ib + 2));
        }
        acc = _mm256_sub_epi32(acc, _mm256_setr_epi32(9 * correction, 0, 0, 0, 0, 0, 0, 0));
        return acc;
    });
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
}

}  // namespace kernels::avx2
